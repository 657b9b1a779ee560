#!/usr/bin/env python3
"""Secrets stay out of the database and out of the logs.

Starts `racefree serve --log-level debug` on a fresh database (SQLite, or a
new database in a PostgreSQL cluster with --pg), makes root keys (the
bootstrap one and `racefree workspace create`) and API keys (with and
without an Idempotency-Key, with an identity and credits), uses every one of
them (bearer, verify, a broken body carrying one, one in a query string, a
bogus bearer), stops the server and then looks for each plaintext:

  at_rest   the raw database: `sqlite3 FILE .dump` plus the bytes of the
            database, WAL and journal files; on PostgreSQL `pg_dump` of the
            database plus, with --pg-dir, every file of the cluster (tables,
            WAL). A secret may exist there only as its SHA-256 (which the
            check also finds, to prove it looked in the right place).
  logs      the server's stderr: the only secret allowed is the bootstrap
            root key, exactly once, on the line that announces it.

Each check prints "ok NAME" or "not ok NAME: why"; the last line is
"N passed, N failed". Exit 1 when any failed.

usage: secrets.py --bin build/racefree [--pg ADMIN_URL [--pg-dir DIR]]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import rf_test  # noqa: E402

SECRET = re.compile(rb"\b(?:rk|rf)_[1-9A-HJ-NP-Za-km-z]{20,}")
tally = rf_test.Tally()
check = tally.check


class Server(rf_test.Serve):
    def __init__(self, binary, db_url, workdir):
        super().__init__(binary, db_url, os.path.join(workdir, "serve.log"),
                         args=["--log-level", "debug", "--provision-delay-ms", "0",
                               "--threads", "2"], merge=True)
        self.start(timeout=40)

    def req(self, method, path, key=None, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = "Bearer " + key
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        try:
            j = json.loads(raw) if raw else None
        except ValueError:
            j = None
        return r.status, j, raw, hdrs


def exercise(srv, root_keys):
    """Every way a secret enters the server. Returns the API keys made."""
    api_keys = []
    for rk in root_keys:
        st, j, _, _ = srv.req("POST", "/v1/keys", rk, {"name": "plain"})
        assert st == 201, (st, j)
        api_keys.append(j["key"])
        # Keyed: the stored idempotent answer is a copy of this response.
        hk = {"Idempotency-Key": "sec-%d" % random.getrandbits(32)}
        body = {"name": "keyed", "externalId": "user-1", "remaining": 3, "meta": {"k": 1}}
        st, j, raw, _ = srv.req("POST", "/v1/keys", rk, body, hk)
        assert st == 201, (st, j)
        api_keys.append(j["key"])
        kid = j["keyId"]
        st2, _, raw2, h2 = srv.req("POST", "/v1/keys", rk, body, hk)
        assert st2 == 201 and h2.get("idempotent-replayed") == "true", (st2, raw2)
        # The replay names the same key; its plaintext was not stored, so it
        # comes back as null (docs/SECURITY.md 4.2).
        j2 = json.loads(raw2)
        assert j2["keyId"] == kid and j2.get("key") in (None, j["key"]), raw2
        st, j, raw, _ = srv.req("PATCH", "/v1/keys/" + kid, rk, {"name": "renamed"})
        assert st == 200, (st, j)
        st, j, raw, _ = srv.req("GET", "/v1/keys/" + kid, rk)
        assert st == 200 and not SECRET.search(raw), ("GET /v1/keys shows a secret", raw)
        for k in api_keys[-2:]:
            st, j, _, _ = srv.req("POST", "/v1/keys/verify", rk, {"key": k})
            assert st == 200 and j["valid"], (st, j)
            # A body that is not JSON, carrying the key: the 400 detail goes
            # to the client, never to the log.
            st, _, _, _ = srv.req("POST", "/v1/keys/verify", rk,
                                  b'{"key":"' + k.encode() + b'", oops}')
            assert st == 400, st
        # A key in a query string (a client's mistake): the request log
        # shows the path only.
        st, _, _, _ = srv.req("GET", "/v1/users?email=" + api_keys[-1] + "%40example.com", rk)
        assert st == 200, st
        # An API key, or a made-up root key, as the bearer: 401, not logged.
        st, _, _, _ = srv.req("GET", "/v1/resources", api_keys[-1])
        assert st == 401, st
    bogus = "rk_" + "".join(random.choice("23456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(44))
    st, _, _, _ = srv.req("GET", "/v1/resources", bogus)
    assert st == 401, st
    return api_keys, bogus


def raw_files(paths):
    """(name, bytes) of every regular file under paths."""
    for p in paths:
        if os.path.isfile(p):
            yield p, open(p, "rb").read()
        elif os.path.isdir(p):
            for d, _, files in os.walk(p):
                for f in files:
                    fp = os.path.join(d, f)
                    try:
                        if os.path.isfile(fp) and not os.path.islink(fp):
                            yield fp, open(fp, "rb").read()
                    except OSError:
                        pass


def run_backend(name, binary, db_url, workdir, dump, raw_paths):
    try:
        _, ws_key = rf_test.workspace_key(binary, db_url, "sec-ws")
    except RuntimeError as ex:
        check(f"{name}: setup", False, str(ex)[-500:])
        return
    srv = Server(binary, db_url, workdir)
    try:
        boot = srv.root_key()
        if not boot:
            check(f"{name}: setup", False, "no bootstrap root key on stderr")
            return
        api_keys, bogus = exercise(srv, [boot, ws_key])
    except Exception as ex:  # noqa: BLE001 - report, then clean up
        check(f"{name}: exercise", False, repr(ex))
        return
    finally:
        rc = srv.stop()
    check(f"{name}: server exits 0 on SIGTERM", rc == 0, f"exit {rc}")
    secrets = {"bootstrap root key": boot, "workspace root key": ws_key, "bogus bearer": bogus}
    secrets.update({f"API key {i}": k for i, k in enumerate(api_keys)})

    # Logs: the bootstrap announcement, once, and nothing else.
    log = open(srv.log, "rb").read()
    bad = []
    for what, s in secrets.items():
        n = log.count(s.encode())
        if n != (1 if s == boot else 0):
            bad.append(f"{what} appears {n} time(s)")
    announced = re.findall(rb"root key, shown only once:\s+(\S+)", log)
    strays = [x.decode() for x in SECRET.findall(log) if x.decode() != boot]
    if announced != [boot.encode()]:
        bad.append("bootstrap root key not announced exactly once")
    if strays:
        bad.append("other key-shaped strings: " + ", ".join(strays[:3]))
    check(f"{name}: no secret in the debug log but the bootstrap line", not bad,
          "; ".join(bad) + f" (log {srv.log})")

    # At rest: dump and raw bytes.
    found = []
    text = dump()
    blobs = [("dump", text)] + list(raw_files(raw_paths))
    for what, s in secrets.items():
        where = sorted({n for n, b in blobs if s.encode() in b})
        if where:
            found.append(f"{what} ({s[:8]}…) in " + ", ".join(os.path.basename(w) for w in where))
    hashes = [hashlib.sha256(s.encode()).hexdigest() for s in (ws_key, api_keys[0])]
    seen = all(h.encode() in text for h in hashes)
    check(f"{name}: the dump holds the keys' SHA-256 (the scan looks at the right data)", seen,
          "hash not found in the dump")
    check(f"{name}: no plaintext root or API key at rest", not found, "; ".join(found))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pg", help="admin URL of a PostgreSQL cluster (…/postgres)")
    ap.add_argument("--pg-dir", help="the cluster's directory, for the raw scan")
    ap.add_argument("--keep", action="store_true")
    o = ap.parse_args()
    binary = os.path.abspath(o.bin)
    work = tempfile.mkdtemp(prefix="rf-secrets-")
    try:
        sq = os.path.join(work, "sqlite")
        os.mkdir(sq)
        db = os.path.join(sq, "racefree.db")

        def sqlite_dump():
            return subprocess.run(["sqlite3", db, ".dump"], capture_output=True, check=True,
                                  timeout=60).stdout

        run_backend("sqlite", binary, "sqlite:" + db, sq, sqlite_dump,
                    [db, db + "-wal", db + "-journal", db + "-shm"])
        if o.pg:
            pg = os.path.join(work, "pg")
            os.mkdir(pg)
            name = "rf_sec_%d" % random.getrandbits(30)
            subprocess.run(["psql", "-q", "-X", o.pg, "-c", f"CREATE DATABASE {name}"],
                           check=True, capture_output=True, timeout=60)
            url = o.pg.rsplit("/", 1)[0] + "/" + name
            try:
                def pg_dump():
                    # A CHECKPOINT first, so that table files hold the rows
                    # too, not only the WAL.
                    subprocess.run(["psql", "-q", "-X", o.pg, "-c", "CHECKPOINT"],
                                   capture_output=True, timeout=60)
                    return subprocess.run(["pg_dump", "--data-only", url], capture_output=True,
                                          check=True, timeout=120).stdout

                run_backend("postgres", binary, url, pg, pg_dump,
                            [o.pg_dir] if o.pg_dir else [])
            finally:
                subprocess.run(["psql", "-q", "-X", o.pg, "-c",
                                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                               capture_output=True, timeout=60)
    finally:
        if o.keep or tally.failed:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rc = tally.summary()
    return rc if tally.passed + tally.failed else 1


if __name__ == "__main__":
    sys.exit(main())
