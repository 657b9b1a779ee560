#!/usr/bin/env python3
"""Fault tests for racefree serve (python3 standard library only).

  kill_sqlite, kill_pg   a mixed keyed load; `racefree serve` is killed with SIGKILL at
                         random moments, restarted, every unanswered request is retried
                         with the same Idempotency-Key and body, then the database is
                         checked against the journal of every request and answer
  pg_stop                PostgreSQL stopped and started again under load: only 503 +
                         Retry-After meanwhile, full recovery in the same serve process
  sqlite_full            the SQLite file on a full tmpfs: 507 insufficient_storage (or
                         503), never 500, no corruption, recovery once space returns
  sqlite_locked          another process holds the write lock longer than the retry
                         budget: 503 + Retry-After, never 500; reads go on; writes recover

Ends with "N passed, N failed"; exit 1 on any failure. Knobs (environment):
KILLS (default 100 per backend), KILL_SECONDS (default 150: a kill loop stops there even
if short of KILLS, and says so), SEED, LOCK_BUDGET_S (default 10), FAULTS_KEEP=1 keeps the
scratch directory.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import rf_test  # noqa: E402


LEASE_S = 2  # --idempotency-lease: short, so retries of killed requests finish quickly
PROVISION_MS = 30  # long enough that kills land inside resource handlers
THREADS = 4  # serve --threads, and load workers per window

USERNAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
             "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
             "victor", "walter", "zoe"]
EVENT_NAMES = ["Launch Party", "Launch Party 2", "Café Ñandú", "Bob's BBQ", "launch-party",
               "Weekly Sync", "Æther Night", "!!!"]
EXTERNAL_IDS = ["ext-%d" % i for i in range(24)]
RES_TYPES = ["postgres", "redis", "mongodb"]

# What each operation may answer, besides the retryable 409 in-progress and 503.
EXPECTED = {
    "user": {200, 201},
    "user_nokey": {200, 201},
    "claim": {200, 409},
    "event": {201},
    "res": {201, 409},
    "res_nokey": {201, 409},
    "key": {201},
    "verify": {200},
}

# ---------------------------------------------------------------- processes

# The server must not outlive a driver killed by a CI timeout: util-linux's
# setpriv sets the parent-death signal before exec (a preexec_fn would do the
# same, but forking this threaded interpreter costs up to seconds on a busy
# machine, a hundred times over). Servers are started from the main thread
# only, since the signal follows the thread.
SETPRIV = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def log(msg):
    print(msg, flush=True)


class Serve(rf_test.Serve):
    """One `racefree serve` on a fixed port, restarted by the tests at will."""

    def __init__(self, binary, db_url, logpath, args=()):
        super().__init__(binary, db_url, logpath,
                         ["--log-level", "warn", "--threads", str(THREADS)] + list(args),
                         port=rf_test.free_port(), append=True, prefix=SETPRIV, healthz=True,
                         stdin=subprocess.DEVNULL, stop_s=20)

    def start(self, extra=(), timeout=40):
        return super().start(extra, timeout, poll=0.005, tries=3)


workspace_key = rf_test.workspace_key


# ---------------------------------------------------------------- databases


class SqliteDB:
    def __init__(self, path):
        self.path = path
        self.url = "sqlite:" + path

    def rows(self, sql):
        return self.many([sql])[0]

    def many(self, sqls):
        con = sqlite3.connect(self.path, timeout=30)
        try:
            return [[tuple(None if v is None else str(v) for v in r) for r in con.execute(q)]
                    for q in sqls]
        finally:
            con.close()

    def integrity(self):
        """[] when PRAGMA integrity_check and foreign_key_check find nothing."""
        con = sqlite3.connect(self.path, timeout=30)
        try:
            bad = [r[0] for r in con.execute("PRAGMA integrity_check") if r[0] != "ok"]
            bad += ["foreign key: %r" % (r,) for r in con.execute("PRAGMA foreign_key_check")]
            return bad
        finally:
            con.close()


class PgDB:
    def __init__(self, url):
        self.url = url

    def rows(self, sql):
        return self.many([sql])[0]

    def many(self, sqls):
        # One psql for all of them (a psql start costs more than the queries);
        # a marker row ends each result.
        argv = ["psql", self.url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F",
                "\x1f", "-R", "\x1e", "-P", "null=\x1d"]
        for q in sqls:
            argv += ["-c", q, "-c", "SELECT '\x1c'"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("psql: %s" % out.stderr.strip())
        res, cur = [], []
        # Rows end in -R's separator within a result, in a newline after one;
        # no value here holds either.
        for line in out.stdout.replace("\n", "\x1e").split("\x1e"):
            if line == "\x1c":
                res.append(cur)
                cur = []
            elif line:
                cur.append(tuple(None if v == "\x1d" else v for v in line.split("\x1f")))
        return res

    def integrity(self):
        return []  # constraints are checked by the invariant queries


class PgCluster(rf_test.PgCluster):
    """A throwaway cluster of scripts/pg.sh, with a database per test."""

    def database(self, name):
        PgDB(self.url).rows("CREATE DATABASE %s" % name)
        return PgDB(self.db_url(name))


# ---------------------------------------------------------------- HTTP


class Client:
    """One keep-alive connection; None for any request that got no answer."""

    def __init__(self, serve, token, timeout=15):
        self.serve, self.token, self.timeout = serve, token, timeout
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None

    def send(self, method, path, body=None, key=None):
        headers = {"Authorization": "Bearer " + self.token}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.serve.port,
                                                       timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self.close()
            return r.status, hdrs, data
        except (OSError, http.client.HTTPException):
            self.close()
            return None


def problem_code(body):
    try:
        return json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None


# ---------------------------------------------------------------- the load


class Req:
    __slots__ = ("id", "op", "method", "path", "body", "key", "sends", "unanswered", "final",
                 "answers", "not_before", "queued", "meta")

    def __init__(self, rid, op, method, path, body, key, meta):
        self.id, self.op, self.method, self.path = rid, op, method, path
        self.body = json.dumps(body, ensure_ascii=False).encode()
        self.key, self.meta = key, meta
        self.sends = self.unanswered = 0
        self.final = None  # (status, body bytes)
        self.answers = []  # every (status, body, replayed) answer
        self.not_before = 0.0
        self.queued = False


class Load:
    """The journal and the request mix. Thread-safe; one per test."""

    def __init__(self, tag, rng, quota):
        self.tag, self.rng, self.quota = tag, rng, quota
        self.mu = threading.Lock()
        self.reqs = []
        self.retry = []  # Req waiting for another send
        self.emails = []
        self.user_ids = []
        self.key_secrets = []  # (Req of the key create, secret)
        self.violations = []
        self.n = {"sent": 0, "unanswered": 0, "in_progress": 0, "503": 0, "507": 0, "retried": 0}
        self.retried_ids = set()
        self.new_ops = True
        self.full_ok = False  # 507 insufficient_storage is an answer to retry

    def violation(self, msg):
        with self.mu:
            if len(self.violations) < 30:
                log("  VIOLATION: " + msg)
            self.violations.append(msg)

    def _new(self):
        rng = self.rng
        rid = len(self.reqs)
        key = "%s-%d" % (self.tag, rid)
        ops = [("user", 20), ("user_nokey", 8), ("event", 14), ("res", 12), ("res_nokey", 6),
               ("key", 12)]
        if self.user_ids:
            ops.append(("claim", 14))
        if self.key_secrets:
            ops.append(("verify", 16))
        op = rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        meta = None
        if op in ("user", "user_nokey"):
            if self.emails and rng.random() < 0.35:
                email = rng.choice(self.emails)
            else:
                email = "u%d@faults.test" % rid
                self.emails.append(email)
            # Mixed case: the server lower-cases, so both spellings are one user.
            sent = email.upper() if rng.random() < 0.2 else email
            r = Req(rid, op, "POST", "/v1/users", {"email": sent, "name": "n%d" % rid},
                    key if op == "user" else None, email)
        elif op == "claim":
            uid = rng.choice(self.user_ids)
            name = rng.choice(USERNAMES)
            if rng.random() < 0.3:
                name = name.capitalize()
            r = Req(rid, op, "PATCH", "/v1/users/" + uid, {"username": name}, key,
                    (uid, name.lower()))
        elif op == "event":
            r = Req(rid, op, "POST", "/v1/events", {"name": rng.choice(EVENT_NAMES)}, key, None)
        elif op in ("res", "res_nokey"):
            name = "r-%s-%d" % (self.tag, rid)
            r = Req(rid, op, "POST", "/v1/resources", {"type": rng.choice(RES_TYPES),
                                                       "name": name},
                    key if op == "res" else None, name)
        elif op == "key":
            remaining = rng.randint(0, 4)
            ext = rng.choice(EXTERNAL_IDS)
            name = "k-%s-%d" % (self.tag, rid)
            r = Req(rid, op, "POST", "/v1/keys", {"name": name, "externalId": ext,
                                                  "remaining": remaining}, key,
                    (name, ext, remaining))
        else:
            kreq, secret = rng.choice(self.key_secrets)
            r = Req(rid, op, "POST", "/v1/keys/verify", {"key": secret}, key, kreq)
        self.reqs.append(r)
        return r

    def next(self):
        """A due retry first, else a new request (None: nothing to do now)."""
        now = time.monotonic()
        with self.mu:
            for i, r in enumerate(self.retry):
                if r.not_before <= now:
                    del self.retry[i]
                    r.queued = False
                    if r.id not in self.retried_ids:
                        self.retried_ids.add(r.id)
                        self.n["retried"] += 1
                    return r
            if not self.new_ops:
                return None
            return self._new()

    def pending(self):
        with self.mu:
            return len(self.retry)

    def _requeue(self, r, delay):
        r.not_before = time.monotonic() + delay
        if not r.queued:
            r.queued = True
            self.retry.append(r)

    def record(self, r, res):
        with self.mu:
            r.sends += 1
            self.n["sent"] += 1
            if res is None:
                r.unanswered += 1
                self.n["unanswered"] += 1
                if r.op != "res_nokey":  # an unkeyed create is never safe to resend
                    self._requeue(r, 0.0)
                return
            status, hdrs, body = res
            code = problem_code(body) if status >= 400 else None
            r.answers.append((status, body, hdrs.get("idempotent-replayed") == "true"))
            if status == 409 and code == "idempotency_key_in_progress":
                self.n["in_progress"] += 1
                if r.op != "res_nokey":
                    self._requeue(r, float(hdrs.get("retry-after", "1")))
                return
            if status == 507 and self.full_ok and code == "insufficient_storage":
                self.n["507"] += 1
                self._requeue(r, 0.2)
                return
            if status == 503:
                self.n["503"] += 1
                if "retry-after" not in hdrs:
                    self._bad("%s %d: 503 without Retry-After" % (r.op, r.id))
                if r.op != "res_nokey":
                    self._requeue(r, float(hdrs.get("retry-after", "1")))
                return
            ok = status in EXPECTED[r.op]
            if status == 409 and r.op == "claim":
                ok = code == "username_taken"
            if status == 409 and r.op in ("res", "res_nokey"):
                ok = code == "quota_exceeded"
            if not ok:
                self._bad("%s %d (%s %s %s): unexpected %d %s" %
                          (r.op, r.id, r.method, r.path, r.body.decode(), status, body[:200]))
            r.final = (status, body)
            if status == 201 and r.op in ("user", "user_nokey"):
                self.user_ids.append(json.loads(body)["user"]["id"])
            if status == 201 and r.op == "key" and json.loads(body)["key"]:
                # A replay carries "key": null (docs/API.md): only the first
                # answer shows the secret.
                self.key_secrets.append((r, json.loads(body)["key"]))

    def _bad(self, msg):
        if len(self.violations) < 30:
            log("  VIOLATION: " + msg)
        self.violations.append(msg)


def worker(load, client, stop):
    while not stop.is_set():
        r = load.next()
        if r is None:
            time.sleep(0.01)
            continue
        res = client.send(r.method, r.path, r.body, r.key)
        load.record(r, res)
        if res is None:
            time.sleep(0.005)  # the server is down: do not spin
    client.close()


def run_workers(load, serve, token, seconds, nthreads=THREADS, during=None):
    """Runs the load for `seconds`; `during` (if any) runs meanwhile in this thread
    and its result is returned once the workers have stopped."""
    stop = threading.Event()
    ts = [threading.Thread(target=worker, args=(load, Client(serve, token), stop))
          for _ in range(nthreads)]
    for t in ts:
        t.start()
    result = None
    try:
        result = during() if during else time.sleep(seconds)
    finally:
        stop.set()
        for t in ts:
            t.join(60)
    return result


def drain(load, serve, token, budget_s=60):
    """Sends every pending request until each has an answer that is final."""
    load.new_ops = False
    c = Client(serve, token)
    deadline = time.monotonic() + budget_s
    while load.pending() and time.monotonic() < deadline:
        r = load.next()
        if r is None:
            time.sleep(0.05)
            continue
        load.record(r, c.send(r.method, r.path, r.body, r.key))
    c.close()
    left = load.pending()
    if left:
        load.violation("%d requests still without a final answer after %d s of retries" %
                       (left, budget_s))


def stored_form(op, status, body):
    """An answer as a replay must give it back: byte for byte, except that a
    created key's plaintext is never stored (docs/API.md, Idempotency)."""
    if op == "key" and status == 201:
        j = json.loads(body)
        j["key"] = None
        return status, json.dumps(j, sort_keys=True)
    return status, body


def replay_audit(load, serve, token):
    """Every keyed request whose final answer was stored must replay it byte for byte."""
    todo = [r for r in load.reqs if r.key and r.final and 200 <= r.final[0] < 500
            and r.final[0] not in (409, 429)]
    bad = []

    def run(part):
        c = Client(serve, token)
        for r in part:
            res = c.send(r.method, r.path, r.body, r.key)
            if res is None:
                bad.append("replay of %s %d: no answer" % (r.op, r.id))
            elif (stored_form(r.op, res[0], res[2]) != stored_form(r.op, *r.final)
                  or res[1].get("idempotent-replayed") != "true"):
                bad.append("replay of %s %d: %d %s (Idempotent-Replayed: %s), first answer %d %s"
                           % (r.op, r.id, res[0], res[2][:120],
                              res[1].get("idempotent-replayed"), r.final[0], r.final[1][:120]))
        c.close()

    ts = [threading.Thread(target=run, args=(todo[i::THREADS],)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    for b in bad:
        load.violation(b)
    # Answers to retries equal the first stored answer too (a replay of a run
    # that committed just before a kill).
    for r in load.reqs:
        stored = [stored_form(r.op, s, b) for s, b, _ in r.answers
                  if 200 <= s < 500 and s not in (409, 429)]
        if r.key and any(a != stored[0] for a in stored):
            load.violation("%s %d: answers differ between sends: %r" % (r.op, r.id, stored))
    return len(todo)


# ---------------------------------------------------------------- invariants


def check_db(load, db, ws, quota, lease_ms=LEASE_S * 1000):
    """Checks the database against the journal; appends to load.violations."""
    v = load.violation
    w = "'%s'" % ws
    checks = [
        ("duplicate email", "SELECT workspace_id, email FROM users GROUP BY workspace_id, email"
         " HAVING COUNT(*) > 1"),
        ("duplicate username", "SELECT workspace_id, username_key FROM users WHERE username_key"
         " IS NOT NULL GROUP BY workspace_id, username_key HAVING COUNT(*) > 1"),
        ("duplicate slug", "SELECT workspace_id, slug FROM events GROUP BY workspace_id, slug"
         " HAVING COUNT(*) > 1"),
        ("duplicate identity", "SELECT workspace_id, external_id FROM identities GROUP BY"
         " workspace_id, external_id HAVING COUNT(*) > 1"),
        ("key pointing at a missing identity", "SELECT k.id FROM api_keys k LEFT JOIN"
         " identities i ON i.id = k.identity_id WHERE k.identity_id IS NOT NULL AND i.id IS NULL"),
        ("negative credits", "SELECT id FROM api_keys WHERE remaining < 0"),
        ("keyed reservation still in_flight", "SELECT idem_key, state FROM idempotency_keys"
         " WHERE kind = 'key' AND state <> 'done'"),
    ]
    tables = [
        "SELECT id, email, username_key FROM users WHERE workspace_id = %s" % w,
        "SELECT id, slug FROM events WHERE workspace_id = %s" % w,
        "SELECT id, name FROM resources WHERE workspace_id = %s" % w,
        "SELECT id, name, identity_id, remaining FROM api_keys WHERE workspace_id = %s" % w,
        "SELECT id, external_id FROM identities WHERE workspace_id = %s" % w,
        "SELECT n FROM resource_counts WHERE workspace_id = %s" % w,
    ]
    got = db.many([sql for _, sql in checks] + tables)
    for (what, _), rows in zip(checks, got):
        for row in rows:
            v("%s: %r" % (what, row))
    for row in db.integrity():
        v("integrity: %s" % row)
    t_users, t_events, t_res, t_keys, t_idents, counts = got[len(checks):]
    users = {email: (uid, uk) for uid, email, uk in t_users}
    events = dict(t_events)
    res = {}
    for rid, name in t_res:
        res.setdefault(name, []).append(rid)
    keys = {}
    for kid, name, iid, rem in t_keys:
        keys.setdefault(name, []).append((kid, iid, rem))
    idents = dict(t_idents)
    nres = sum(len(x) for x in res.values())
    if nres != (int(counts[0][0]) if counts else 0):
        v("resource_counts says %s, resources hold %d" % (counts, nres))
    if quota and nres > quota:
        v("%d resources over the quota of %d" % (nres, quota))

    created = {}  # email -> number of requests answered 201
    claims = set()
    event_ids = set()
    valid = {}  # key create Req id -> VALID verifications
    for r in load.reqs:
        if r.final is None:
            if r.op != "res_nokey":
                v("%s %d never got a final answer" % (r.op, r.id))
            elif len(res.get(r.meta, [])) > 1:
                v("unkeyed resource %s: %d rows" % (r.meta, len(res[r.meta])))
            continue
        st, body = r.final
        j = json.loads(body) if body else {}
        if r.op in ("user", "user_nokey"):
            row = users.get(r.meta)
            if row is None or j.get("user", {}).get("id") != row[0]:
                v("user %s: answered %s, database %s" % (r.meta, j.get("user"), row))
            if st == 201:
                created[r.meta] = created.get(r.meta, 0) + 1
        elif r.op == "claim" and st == 200:
            claims.add((r.meta[0], r.meta[1]))
        elif r.op == "event":
            e = j.get("event", {})
            event_ids.add(e.get("id"))
            if events.get(e.get("id")) != e.get("slug"):
                v("event %s: answered slug %s, database %s" % (e.get("id"), e.get("slug"),
                                                               events.get(e.get("id"))))
        elif r.op in ("res", "res_nokey"):
            rows = res.get(r.meta, [])
            want = 1 if st == 201 else 0
            if len(rows) != want or (want and rows[0] != j["resource"]["id"]):
                v("resource %s (answer %d): database rows %r" % (r.meta, st, rows))
        elif r.op == "key":
            name, ext, _ = r.meta
            rows = keys.get(name, [])
            if len(rows) != 1 or rows[0][0] != j.get("keyId") or rows[0][1] != j.get(
                    "identityId") or idents.get(rows[0][1]) != ext:
                v("key %s (%s): answered %s, database %r" % (name, ext, j, rows))
        elif r.op == "verify" and j.get("code") == "VALID":
            valid[r.meta.id] = valid.get(r.meta.id, 0) + 1
    for email, n in created.items():
        if n > 1:
            v("user %s: %d requests answered 201" % (email, n))
    if any(e not in users for e in load.emails):
        v("users missing: %r" % [e for e in load.emails if e not in users][:5])
    for uid, uk in ((uid, uk) for uid, uk in users.values() if uk):
        if (uid, uk) not in claims:
            v("user %s holds username %s that no answered claim gave it" % (uid, uk))
    extra = set(events) - event_ids
    if extra or len(event_ids) != sum(1 for r in load.reqs if r.op == "event"):
        v("events: %d in the database not in any answer, %d answered, %d requested" %
          (len(extra), len(event_ids), sum(1 for r in load.reqs if r.op == "event")))
    for r in load.reqs:
        if r.op == "key" and r.final and r.final[0] == 201:
            name, _, r0 = r.meta
            rem = keys[name][0][2] if len(keys.get(name, [])) == 1 else None
            spent = valid.get(r.id, 0)
            if spent > r0 or rem is None or int(rem) != r0 - spent:
                v("key %s: %d credits, %d VALID verifications, %s left" % (name, r0, spent, rem))
    # Reservations of killed unkeyed creates stay in_flight until the sweep;
    # a reservation of any kind past its lease is checked after the sweep ran.
    return len(load.violations)


def dead_reservations(db, grace_ms):
    now = int(time.time() * 1000)
    return db.rows("SELECT kind, idem_key, lease_expires FROM idempotency_keys WHERE state ="
                   " 'in_flight' AND lease_expires <= %d" % (now - grace_ms))


def summary(name, load, extra=""):
    n = load.n
    answered = sum(1 for r in load.reqs if r.final is not None)
    log("  %s: requests %d, sends %d, answered %d, unanswered sends %d, retried %d, "
        "in-progress answers %d, 503 answers %d%s, violations %d" %
        (name, len(load.reqs), n["sent"], answered, n["unanswered"], n["retried"],
         n["in_progress"], n["503"], extra, len(load.violations)))


# ---------------------------------------------------------------- tests


class Ctx:
    def __init__(self, args, tmp):
        self.bin = args.bin
        self.tmp = tmp
        self.kills = int(os.environ.get("KILLS", "100"))
        # A cap on each kill loop, so that a slow CI machine stays within its
        # time; the count of kills done is printed either way.
        self.kill_seconds = int(os.environ.get("KILL_SECONDS", "150"))
        seed = os.environ.get("SEED")
        self.seed = int(seed) if seed else random.randrange(1 << 30)
        self.pg = None

    def pg_cluster(self):
        if self.pg is None:
            self.pg = PgCluster(os.path.join(self.tmp, "pg"))
            self.pg.start()
        return self.pg


def kill_test(ctx, backend):
    rng = random.Random(ctx.seed + (1 if backend == "pg" else 0))
    if backend == "sqlite":
        db = SqliteDB(os.path.join(ctx.tmp, "kill.db"))
    else:
        db = ctx.pg_cluster().database("faults_kill")
    # The quota is reached about halfway, so quota_exceeded answers and the
    # counter are both exercised across kills.
    quota = max(10, ctx.kills * 3 // 2)
    ws, token = workspace_key(ctx.bin, db.url, "faults")
    serve = Serve(ctx.bin, db.url, os.path.join(ctx.tmp, "kill-%s.log" % backend),
                  ["--idempotency-lease", str(LEASE_S), "--provision-delay-ms",
                   str(PROVISION_MS), "--resource-quota", str(quota)])
    load = Load("k" + backend, rng, quota)
    t0 = time.monotonic()
    kills = 0
    try:
        t_start = t_load = 0.0
        for _ in range(ctx.kills):
            if time.monotonic() - t0 > ctx.kill_seconds:
                log("  KILL_SECONDS=%d reached: stopping after %d of %d kills (a slow machine; "
                    "the checks below still run)" % (ctx.kill_seconds, kills, ctx.kills))
                break
            t = time.monotonic()
            serve.start()
            t_start += time.monotonic() - t
            window = rng.uniform(0.05, 0.4)
            t = time.monotonic()
            run_workers(load, serve, token, 0, during=lambda: (time.sleep(window), serve.kill9()))
            t_load += time.monotonic() - t
            kills += 1
        log("  %d kills: %.2f s per restart, %.2f s per load window and kill" %
            (kills, t_start / max(kills, 1), t_load / max(kills, 1)))
        t_kills = time.monotonic() - t0
        serve.start()
        drain(load, serve, token)
        t_drain = time.monotonic() - t0 - t_kills
        audited = replay_audit(load, serve, token)
        serve.stop()
        check_db(load, db, ws, quota)
        t_check = time.monotonic() - t0 - t_kills - t_drain
        # The sweep removes reservations past their lease (here: of unkeyed
        # creates killed mid-handler, which nobody retries) after the grace
        # of --idempotency-ttl.
        before = len(dead_reservations(db, 0))
        serve.start(["--idempotency-ttl", "1"])
        time.sleep(LEASE_S + 2.5)
        serve.stop()
        left = dead_reservations(db, 1000 + 1500)
        for row in left:
            load.violation("reservation in_flight past its lease after the sweep: %r" % (row,))
    finally:
        serve.kill9()
    summary("kill -9 on %s" % backend, load,
            ", kills %d, replays audited %d, dead leases swept %d, %.1f s (kills %.1f, "
            "drain %.1f, audit and checks %.1f)" % (kills, audited, before,
                                                   time.monotonic() - t0, t_kills, t_drain,
                                                   t_check))
    return not load.violations and kills > 0


def pg_stop_test(ctx):
    rng = random.Random(ctx.seed + 2)
    cluster = ctx.pg_cluster()
    db = cluster.database("faults_stop")
    ws, token = workspace_key(ctx.bin, db.url, "faults")
    serve = Serve(ctx.bin, db.url, os.path.join(ctx.tmp, "pgstop.log"),
                  ["--idempotency-lease", str(LEASE_S), "--provision-delay-ms",
                   str(PROVISION_MS)])
    load = Load("pgstop", rng, 0)
    marks = {}
    ok = True
    try:
        serve.start()
        pid = serve.proc.pid

        def outage():
            time.sleep(0.8)
            marks["before"] = len(load.reqs)
            cluster.stop()
            marks["stopped"] = time.monotonic()
            time.sleep(2.5)
            cluster.start()
            marks["started"] = time.monotonic()
            # Every connection of the pool was lost: give the server a second
            # to reconnect, then every request must succeed.
            time.sleep(1.0)
            with load.mu:
                marks["n503_recovered"] = load.n["503"]
                marks["unans_recovered"] = load.n["unanswered"]
            time.sleep(3.0)
            with load.mu:
                marks["n503_end"] = load.n["503"]
                marks["unans_end"] = load.n["unanswered"]

        run_workers(load, serve, token, 0, nthreads=2, during=outage)
        if not serve.alive() or serve.proc.pid != pid:
            load.violation("the serve process died during the outage")
            ok = False
        drain(load, serve, token, budget_s=20)
        replay_audit(load, serve, token)
        serve.stop()
        check_db(load, db, ws, 0)
    finally:
        serve.kill9()
    if load.n["503"] == 0:
        load.violation("no 503 during the outage: did it happen?")
    if load.n["unanswered"]:
        load.violation("%d requests got no answer at all (want 503 + Retry-After)" %
                       load.n["unanswered"])
    if marks.get("n503_end") != marks.get("n503_recovered"):
        load.violation("%d x 503 more than 1 s after the cluster was back" %
                       (marks["n503_end"] - marks["n503_recovered"]))
    summary("pg stop/start", load, ", outage %.1f s" % (marks["started"] - marks["stopped"]))
    return ok and not load.violations


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs",
                          path], capture_output=True, text=True)
    return out.returncode == 0, (out.stderr or out.stdout).strip()


def sqlite_full_test(ctx):
    mnt = os.path.join(ctx.tmp, "full")
    ok, why = mount_tmpfs(mnt, "3m")
    if not ok:
        log("  skipped: cannot mount a 3 MiB tmpfs (%s); the full-filesystem test needs root "
            "or CAP_SYS_ADMIN" % (why or "mount failed"))
        return "skip"
    db = SqliteDB(os.path.join(mnt, "full.db"))
    load = Load("full", random.Random(ctx.seed + 3), 0)
    serve = None
    try:
        ws, token = workspace_key(ctx.bin, db.url, "faults")
        serve = Serve(ctx.bin, db.url, os.path.join(ctx.tmp, "full.log"),
                      ["--idempotency-lease", str(LEASE_S), "--provision-delay-ms", "0"])
        serve.start()
        c = Client(serve, token)
        statuses = {}
        # Fill the disk but for a few pages, then write until it is full: the
        # last writes that fit and the first that fail may land in any
        # statement of a request, not only in its first.
        ballast = os.path.join(mnt, "ballast")
        # Unbuffered: a write that the full disk cuts short leaves nothing
        # behind for close() to flush (and fail on) again.
        with open(ballast, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 16384)
                    f.flush()
            except OSError:
                pass
        os.truncate(ballast, max(0, os.path.getsize(ballast) - 256 * 1024))
        meta = {"pad": "x" * 3800}
        load.full_ok = True
        for i in range(400):
            with load.mu:
                rid = len(load.reqs)
                r = Req(rid, "key", "POST", "/v1/keys",
                        {"name": "k-full-%d" % rid, "externalId": "full-%d" % rid,
                         "remaining": 1, "meta": meta}, "full-%d" % rid,
                        ("k-full-%d" % rid, "full-%d" % rid, 1))
                load.reqs.append(r)
            res = c.send(r.method, r.path, r.body, r.key)
            st = res[0] if res else 0
            what = ("%d %s" % (st, problem_code(res[2]) or "")).strip() if res else "no answer"
            statuses[what] = statuses.get(what, 0) + 1
            load.record(r, res)  # a 507 of another code is unexpected there
            if load.n["507"] >= 5:
                break
        # Reads go on while the disk is full.
        rd = c.send("GET", "/v1/users?email=nobody@faults.test")
        if not rd or rd[0] != 200:
            load.violation("a read while the disk was full: %s" % (rd[0] if rd else None))
        c.close()
        log("  while full: %s" % ", ".join("%s x%d" % kv for kv in sorted(statuses.items())))
        if load.n["507"] == 0:
            load.violation("no 507 insufficient_storage although the disk filled up")
        os.unlink(ballast)
        # Space is back: the same process takes every refused write again.
        drain(load, serve, token, budget_s=LEASE_S * 3 + 10)
        if serve.proc.poll() is not None:
            load.violation("serve died while the disk was full")
        serve.stop()
        for row in db.integrity():
            load.violation("integrity after a full disk: %s" % row)
        check_db(load, db, ws, 0)
    finally:
        if serve:
            serve.kill9()
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    summary("sqlite full disk", load, ", 507 answers %d" % load.n["507"])
    return not load.violations


def sqlite_locked_test(ctx):
    budget = float(os.environ.get("LOCK_BUDGET_S", "10"))
    db = SqliteDB(os.path.join(ctx.tmp, "locked.db"))
    ws, token = workspace_key(ctx.bin, db.url, "faults")
    serve = Serve(ctx.bin, db.url, os.path.join(ctx.tmp, "locked.log"),
                  ["--idempotency-lease", str(LEASE_S), "--provision-delay-ms", "0"])
    load = Load("lock", random.Random(ctx.seed + 4), 0)
    hold = budget + 5
    statuses = {}
    try:
        serve.start()
        c = Client(serve, token, timeout=hold + 60)
        if c.send("POST", "/v1/users", b'{"email":"first@faults.test"}')[0] != 201:
            load.violation("the first write failed")
        other = sqlite3.connect(db.path, timeout=30, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        got503 = None
        slowest = [0.0]

        def writer(i):
            nonlocal got503
            cl = Client(serve, token, timeout=hold + 60)
            while time.monotonic() < locked_at + hold - 1:
                with load.mu:
                    rid = len(load.reqs)
                    r = Req(rid, "user", "POST", "/v1/users",
                            {"email": "lock%d@faults.test" % rid}, "lock-%d" % rid,
                            "lock%d@faults.test" % rid)
                    load.emails.append(r.meta)
                    load.reqs.append(r)
                t = time.monotonic()
                res = cl.send(r.method, r.path, r.body, r.key)
                st = res[0] if res else 0
                with load.mu:
                    statuses[st] = statuses.get(st, 0) + 1
                    slowest[0] = max(slowest[0], time.monotonic() - t)
                if st == 503 and got503 is None and time.monotonic() < locked_at + hold:
                    got503 = time.monotonic() - t
                load.record(r, res)
            cl.close()

        ts = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        time.sleep(1)
        rd = c.send("GET", "/v1/users?email=first@faults.test")
        reads_ok = rd is not None and rd[0] == 200
        time.sleep(max(0.0, locked_at + hold - time.monotonic()))
        other.execute("ROLLBACK")
        other.close()
        for t in ts:
            t.join(hold + 120)
        c.close()
        if not reads_ok:
            load.violation("a read while another process held the write lock: %s" %
                           (rd[0] if rd else "no answer"))
        if got503 is None:
            load.violation("no 503 within %.0f s while another process held the write lock: "
                           "writes waited up to %.1f s, until it was released" %
                           (hold, slowest[0]))
        elif got503 > budget:
            load.violation("the first 503 took %.1f s, over the %.0f s budget" %
                           (got503, budget))
        drain(load, serve, token, budget_s=LEASE_S * 3 + 10)
        serve.stop()
        check_db(load, db, ws, 0)
    finally:
        serve.kill9()
    log("  while locked: %s" % ", ".join("%s x%d" % (k or "no answer", n)
                                         for k, n in sorted(statuses.items())))
    summary("sqlite locked", load, ", first 503 after %s s" %
            ("%.1f" % got503 if got503 is not None else "-"))
    return not load.violations


TESTS = {
    "kill_sqlite": lambda ctx: kill_test(ctx, "sqlite"),
    "kill_pg": lambda ctx: kill_test(ctx, "pg"),
    "pg_stop": pg_stop_test,
    "sqlite_full": sqlite_full_test,
    "sqlite_locked": sqlite_locked_test,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the racefree binary")
    ap.add_argument("--only", help="comma-separated test names: " + ", ".join(TESTS))
    ap.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL tests")
    args = ap.parse_args()
    # A CI timeout's SIGTERM still stops the cluster and unmounts (finally:).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = args.only.split(",") if args.only else list(TESTS)
    for n in names:
        if n not in TESTS:
            ap.error("unknown test %s" % n)
    if args.no_pg:
        names = [n for n in names if n not in ("kill_pg", "pg_stop")]
    # pg.sh hands the cluster's directory to the postgres user: keep it under /tmp.
    tmp = tempfile.mkdtemp(prefix="rf-faults.", dir="/tmp")
    os.chmod(tmp, 0o755)
    ctx = Ctx(args, tmp)
    log("faults: seed %d (SEED=%d reproduces the request mix), KILLS=%d, scratch %s" %
        (ctx.seed, ctx.seed, ctx.kills, tmp))
    passed = failed = skipped = 0
    try:
        for n in names:
            log("== %s" % n)
            t = time.monotonic()
            try:
                ok = TESTS[n](ctx)
            except Exception as e:  # a broken test is a failed test, with its reason
                import traceback
                traceback.print_exc()
                log("  error: %s" % e)
                ok = False
            dt = time.monotonic() - t
            if ok == "skip":
                skipped += 1
                passed += 1
                log("ok   %s (skipped, counted as passed) %.1f s" % (n, dt))
            elif ok:
                passed += 1
                log("ok   %s %.1f s" % (n, dt))
            else:
                failed += 1
                log("FAIL %s %.1f s (logs in %s)" % (n, dt, tmp))
    finally:
        rf_test.kill_children()
        if ctx.pg:
            ctx.pg.stop()
        if not failed and os.environ.get("FAULTS_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    if skipped:
        log("faults: %d skipped (see above), counted as passed" % skipped)
    log("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
