#!/usr/bin/env python3
"""Duplicates provoked on servers that are not C (issue 16, item 6).

Starts three check-then-insert users services written the way a new user
writes them (tests/fixtures/racy_py.py: ThreadingHTTPServer + SQLite;
racy_node.js: Node http; racy_go: Go net/http), fires bursts of N "create
the same user" requests at each with every probe sync mode and with Node's
Promise.all of fetch (bench/probe/promise_all.js), and counts the duplicate
rows each burst left. Clients take turns burst by burst, so a change in the
machine's load (it is shared) falls on all of them alike.

Every figure is kept: a burst that made no duplicate counts as 0, a request
without a response is counted, nothing is rounded up.

Writes its table into bench/probe/RESULTS.md between the markers
"<!-- servers:begin -->" and "<!-- servers:end -->" (appended when absent),
leaving the rest of the file as bench/probe/spread.py wrote it.

usage: bench/probe/servers.py [--bin build/racefree] [--old-bin PATH] [--bursts 10]
                              [--ns 50,100] [--ns-python 50]
                              [--servers python,python-keepalive,node,go] [--out FILE]
--old-bin adds the same probe from another build (e.g. main) as one more client.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
BEGIN, END = "<!-- servers:begin -->", "<!-- servers:end -->"


def http(method, url, timeout=60):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return p, m.group(1)
    p.send_signal(signal.SIGTERM)
    sys.exit("server did not start: %s" % " ".join(cmd))


def server_cmd(name, tmp):
    if name == "python":
        return ["python3", os.path.join(FIX, "racy_py.py"), "--max-seconds", "3600"]
    if name == "python-keepalive":
        return ["python3", os.path.join(FIX, "racy_py.py"), "--max-seconds", "3600",
                "--keepalive"]
    if name == "node":
        return ["node", os.path.join(FIX, "racy_node.js"), "--max-seconds", "3600"]
    if name == "go":
        out = os.path.join(tmp, "racy_go")
        env = dict(os.environ, GOCACHE=os.path.join(tmp, "gocache"), GOFLAGS="-mod=mod")
        subprocess.run(["go", "build", "-o", out, "."], cwd=os.path.join(FIX, "racy_go"),
                       check=True, env=env)
        return [out, "-max-seconds", "3600"]
    sys.exit("unknown server " + name)


# Each client: (label, how to run one burst). None in a probe's args marks
# where the sync mode goes.
def clients(binary, old, rt, keepalive):
    c = [("probe --sync lastbyte", [binary, "--sync", "lastbyte"])]
    if rt:
        c.append(("probe --sync lastbyte --rt", [binary, "--sync", "lastbyte", "--rt"]))
    if keepalive:
        c.append(("probe --sync lastbyte --warmup 1", [binary, "--sync", "lastbyte",
                                                       "--warmup", "1"]))
    c.append(("probe --sync none", [binary, "--sync", "none"]))
    if old:
        c.insert(0, ("probe --sync lastbyte, before (main)", [old, "--sync", "lastbyte"]))
    c.append(("Node Promise.all(fetch)", None))
    return c


def fire(client, n, base, email):
    """One burst. Returns (requests without a response, probe exit code)."""
    label, cmd = client
    if cmd is None:
        r = subprocess.run(["node", os.path.join(HERE, "promise_all.js"), base + "/v1/users",
                            str(n), email], timeout=300, capture_output=True, text=True)
        try:
            return json.loads(r.stdout).get("errors", 0), None
        except ValueError:
            return n, None
    full = [cmd[0], "probe", "-n", str(n), "--json", "--timeout", "60000"] + cmd[1:]
    full += ["-d", json.dumps({"email": email}), base + "/v1/users"]
    r = subprocess.run(full, timeout=300, capture_output=True, text=True)
    try:
        doc = json.loads(r.stdout)
        return doc["total"]["no_response"], r.returncode
    except (ValueError, KeyError):
        return n, r.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./build/racefree")
    ap.add_argument("--old-bin")
    ap.add_argument("--bursts", type=int, default=10)
    ap.add_argument("--ns", default="50,100")
    # A burst at Python's listen backlog of 5 takes seconds to connect.
    ap.add_argument("--ns-python", default="50")
    ap.add_argument("--servers", default="python,python-keepalive,node,go")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    ns = [int(x) for x in a.ns.split(",")]
    ns_py = [int(x) for x in a.ns_python.split(",")]
    rt = subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode == 0
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    tmp = tempfile.mkdtemp(prefix="rf-servers-")
    rows = []
    try:
        for sname in a.servers.split(","):
            # --warmup needs keep-alive, which http.server's HTTP/1.0 lacks.
            cl = clients(os.path.abspath(a.bin), a.old_bin and os.path.abspath(a.old_bin), rt,
                         sname != "python")
            p, base = start(server_cmd(sname, tmp))
            try:
                for n in (ns_py if sname.startswith("python") else ns):
                    res = {c[0]: {"dups": [], "nores": 0, "spreads": []} for c in cl}
                    for k in range(a.bursts):
                        for c in cl:
                            http("POST", base + "/reset")
                            email = "s-%s-%d-%d-%d@example.com" % (sname, n, k, cl.index(c))
                            nores, _ = fire(c, n, base, email)
                            users = http("GET", base + "/v1/users?email=" + email)["data"]
                            arr = http("GET", base + "/arrivals")["arrivals"] or []
                            r = res[c[0]]
                            r["dups"].append(max(len(users) - 1, 0))
                            r["nores"] += nores
                            if len(arr) > 1:
                                r["spreads"].append(max(arr) - min(arr))
                    for c in cl:
                        r = res[c[0]]
                        row = {"server": sname, "n": n, "client": c[0], "dups": r["dups"],
                               "nores": r["nores"],
                               "spread": statistics.median(r["spreads"]) if r["spreads"] else None}
                        rows.append(row)
                        print("%-6s n=%-4d %-38s duplicates per burst %s (mean %.1f), "
                              "no response %d" % (sname, n, c[0], r["dups"],
                                                   statistics.mean(r["dups"]), r["nores"]),
                              flush=True)
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    go_v = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    cmd = "python3 bench/probe/servers.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out = [BEGIN, "## Duplicates on servers that are not C (issue 16, item 6)\n",
           "Generated by `%s` on %s. Machine: %s, %d CPUs (shared with other jobs), kernel %s, "
           "Python %s, Node %s, %s.\n" % (cmd.strip(), started, platform.machine(),
                                          os.cpu_count(), platform.release(),
                                          platform.python_version(), node_v, go_v),
           "Servers: `tests/fixtures/racy_py.py` (ThreadingHTTPServer, SQLite without a unique "
           "constraint, HTTP/1.0 as http.server defaults to; *python-keepalive* is the same "
           "with `--keepalive`, HTTP/1.1), `tests/fixtures/racy_node.js` "
           "(Node http, 1 ms awaited round trip before the lookup and before the insert), "
           "`tests/fixtures/racy_go` (net/http, 1 ms sleep before each). %d bursts per cell; "
           "the clients take turns burst by burst. *duplicates*: rows for the burst's one "
           "email minus one, every burst listed in order; *spread*: the server's own "
           "max − min of the times at which it had each request whole (median over the "
           "bursts).\n" % a.bursts,
           "| server | N | client | duplicates per burst | mean | median | bursts with any "
           "| no response | server spread median (µs) |",
           "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        d = r["dups"]
        out.append("| %s | %d | %s | %s | %.1f | %.1f | %d/%d | %d | %s |" % (
            r["server"], r["n"], r["client"], " ".join(str(x) for x in d), statistics.mean(d),
            statistics.median(d), sum(1 for x in d if x), len(d), r["nores"],
            "—" if r["spread"] is None else "%.0f" % (r["spread"] / 1000)))
    out.append(END)
    block = "\n".join(out) + "\n"
    text = open(a.out).read() if os.path.exists(a.out) else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1:]
    elif "<!-- bench/probe/packet.py" in text:
        # Above packet.py's section, which owns everything below its marker.
        at = text.index("<!-- bench/probe/packet.py")
        text = text[:at].rstrip("\n") + "\n\n" + block + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(a.out, "w") as f:
        f.write(text)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
