"""Shared harness of the Python test suites (standard library only).

Import it relative to the script, so that no install or PYTHONPATH is needed:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "support"))
    import rf_test

What it gives:
  free_port()              a port on 127.0.0.1 free at the time of asking
  Serve(binary, db, log)   one `racefree serve` on 127.0.0.1, started by
                           start() (or `with`), stopped by PID with a bound;
                           .port, .root_key() (the bootstrap key in its log)
  workspace_key(bin, db, name)   (workspace id, root key) of a new workspace
  PgCluster(dir)           a throwaway cluster of scripts/pg.sh
  Tally                    "ok NAME" / "not ok NAME: WHY" lines and the
                           "N passed, N failed" summary scripts/test.sh sums

Every process started here is in `children` until reaped, so that a runner
can kill what is left on its way out, by PID.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PG_SH = os.path.join(ROOT, "scripts", "pg.sh")

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")
ROOT_KEY = re.compile(rb"root key, shown only once:\s+(rk_\w+)")

children = set()  # PIDs started here and not yet reaped


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def root_key(log):
    """The bootstrap root key a serve log (bytes) announces, or None."""
    m = ROOT_KEY.search(log)
    return m.group(1).decode() if m else None


def workspace_key(binary, db_url, name, timeout=60):
    out = subprocess.run([binary, "workspace", "create", name, "--db", db_url],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("workspace create: %s" % out.stderr.strip()[-1000:])
    j = json.loads(out.stdout)
    return j["workspaceId"], j["rootKey"]


class Serve:
    """One `racefree serve --listen 127.0.0.1:PORT --db DB ARGS`.

    port=0: the server picks it and start() reads it from the "listening on"
    line, which needs --log-level info or lower. A fixed port (free_port())
    is for servers that are restarted on the same address or run quiet:
    start() then polls until it answers, GET /healthz with 200 when
    healthz=True, a TCP connect otherwise.

    stderr goes to the log (appended to when append=True, as restarts do),
    stdout too when merge=True, else nowhere. prefix goes before the argv
    (e.g. setpriv). A failed start raises RuntimeError with the log's tail.
    """

    def __init__(self, binary, db, log, args=(), port=0, env=None, merge=False, append=False,
                 prefix=(), healthz=False, stdin=None, stop_s=15):
        self.binary, self.db, self.log = binary, db, log
        self.args = list(args)
        self.port = port
        self.env = env
        self.merge, self.append, self.prefix = merge, append, list(prefix)
        self.healthz = healthz
        self.stdin = stdin
        self.stop_s = stop_s
        self.proc = None
        self.starts = 0

    def argv(self, extra=()):
        return self.prefix + [self.binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                              "--db", self.db] + self.args + list(extra)

    def spawn(self, extra=()):
        e = None
        if self.env:
            e = dict(os.environ)
            e.update(self.env)
        with open(self.log, "ab" if self.append else "wb") as logf:
            self.proc = subprocess.Popen(
                self.argv(extra), stdin=self.stdin,
                stdout=logf if self.merge else subprocess.DEVNULL, stderr=logf, env=e)
        children.add(self.proc.pid)
        self.starts += 1

    def text(self, b=False):
        data = open(self.log, "rb").read()
        return data if b else data.decode("utf-8", "replace")

    def answers(self):
        try:
            if not self.healthz:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            finally:
                c.close()
        except OSError:
            return False

    def wait_ready(self, timeout, poll=0.05):
        """True once it listens (and its port is known), False if it exited
        or the time ran out."""
        announced = self.port == 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if announced:
                m = LISTENING.search(self.text(b=True))
                if m:
                    self.port = int(m.group(1))
                    return True
            if self.proc.poll() is not None:
                return False
            if not announced and self.answers():
                return True
            time.sleep(poll)
        return False

    def start(self, extra=(), timeout=20, poll=0.05, tries=1):
        """tries > 1, with a fixed port: someone may take the port between
        two runs, so a start that fails moves to another."""
        fixed = self.port != 0
        for attempt in range(tries):
            self.spawn(extra)
            if self.wait_ready(timeout, poll):
                return self
            if attempt + 1 < tries:
                self.kill9()
                if fixed:
                    self.port = free_port()
        self.stop()
        raise RuntimeError("server did not start (log %s):\n%s" % (self.log, self.text()[-2000:]))

    def root_key(self):
        return root_key(self.text(b=True))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.reap()

    def stop(self, timeout=None):
        """SIGTERM, then SIGKILL after timeout (stop_s) seconds. Returns the
        exit status, or "killed" when it had to be killed."""
        timeout = self.stop_s if timeout is None else timeout
        if self.proc is None:
            return None
        rc = None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                rc = "killed"
        self.reap()
        return self.proc.returncode if rc is None else rc

    def reap(self):
        if self.proc:
            self.proc.wait()
            children.discard(self.proc.pid)

    def __enter__(self):
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def kill_children():
    """SIGKILL to every process started here and still running: for a
    runner's way out, whatever failed."""
    for pid in list(children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class PgCluster:
    """A throwaway cluster of scripts/pg.sh; DIR must be searchable by the
    postgres user (under /tmp) when run as root."""

    def __init__(self, d):
        self.dir = d
        self.url = None

    def start(self, *settings):
        out = subprocess.run([PG_SH, "start", self.dir, *settings], capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("pg.sh start: %s" % out.stderr.strip())
        self.url = out.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self):
        subprocess.run([PG_SH, "stop", self.dir], capture_output=True, timeout=120)

    def db_url(self, name):
        """The URL of database NAME in this cluster (or under admin URL)."""
        return self.url.rsplit("/", 1)[0] + "/" + name

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class Tally:
    """Counts checks; prints one line each, "ok NAME" or "not ok NAME: WHY"
    (sep between "ok" and NAME)."""

    def __init__(self, one_line=False, sep=" "):
        self.passed = self.failed = 0
        self.one_line = one_line  # a multi-line reason folded to one line
        self.sep = sep

    def ok(self, name):
        self.passed += 1
        print(f"ok{self.sep}{name}", flush=True)

    def bad(self, name, why=""):
        self.failed += 1
        if self.one_line:
            why = " ".join(str(why).split())[:600]
        print(f"not ok{self.sep}{name}: {why}", flush=True)

    def check(self, name, ok, why=""):
        if ok:
            self.ok(name)
        else:
            self.bad(name, why)
        return ok

    def summary(self):
        """Prints the summary line; returns the exit status."""
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0
