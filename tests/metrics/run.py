#!/usr/bin/env python3
"""GET /metrics and the request log, black-box, against real servers.

Starts `racefree-test serve` (the server with fault hooks live) on a fresh
SQLite database, scrapes /metrics, makes a known set of requests (a 404, a
405, a 401, a 409, an idempotent replay, a reused key, a create-if-missing
hit, one injected SQLITE_BUSY), scrapes again and checks:

  - the exposition, strictly, with a parser of text format 0.0.4 below and,
    when installed, `promtool check metrics` (Debian: prometheus);
  - that each counter moved by exactly what those requests must have done;
  - histogram invariants (cumulative buckets, +Inf == _count, sums);
  - one JSON line per request on stderr with its request id, and nothing
    secret in the page or the log lines;
  - `--log-level warn`: no request lines, but an error carries its request id.

usage: tests/metrics/run.py [--build DIR]   (default ./build; needs
       DIR/racefree-test). Servers listen on 127.0.0.1 only, are stopped by
       PID, and the whole run gives up after 120 s. Ends "N passed, N failed".
"""
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import rf_test  # noqa: E402

ROOT = rf_test.ROOT
BUILD = os.path.join(ROOT, "build")
args = sys.argv[1:]
while args:
    if args[0] == "--build" and len(args) > 1:
        BUILD = os.path.abspath(args[1])
        args = args[2:]
    else:
        sys.exit("usage: tests/metrics/run.py [--build DIR]")
BIN = os.path.join(BUILD, "racefree-test")

CTYPE = "text/plain; version=0.0.4; charset=utf-8"
tally = rf_test.Tally()
check = tally.check


# ---- a strict parser of the Prometheus text format 0.0.4 --------------------

METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
SAMPLE = re.compile(rf"^({METRIC})(\{{(.*)\}})? (\S+)( -?[0-9]+)?$")
LABEL_PAIR = re.compile(rf'({LABEL})="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_float(s):
    """Go's strconv.ParseFloat as the format allows: no hex, no '_'."""
    if s in ("+Inf", "Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", s):
        raise ValueError(f"not a float: {s!r}")
    return float(s)


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_labels(text):
    out, pos = {}, 0
    if text == "":
        return out
    while pos < len(text):
        m = LABEL_PAIR.match(text, pos)
        if not m:
            raise ValueError(f"bad label set at {text[pos:]!r}")
        name, value = m.group(1), unescape(m.group(2))
        if name in out:
            raise ValueError(f"label {name} twice")
        if name.startswith("__"):
            raise ValueError(f"reserved label name {name}")
        out[name] = value
        pos = m.end()
    return out


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse_exposition(text):
    """Returns ({(name, frozenset(labels)): value}, {family: type}); raises
    ValueError with the line number on anything the format forbids, and on
    what it allows but a careful exporter never does (blank lines, families
    interleaved, a series twice, a sample before its TYPE)."""
    if not text.endswith("\n"):
        raise ValueError("does not end in a newline")
    samples, types, helps, done, current = {}, {}, set(), set(), None
    for no, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {no}: {line[:80]!r}"
        if line == "":
            raise ValueError(f"{where}: blank line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(METRIC, name):
                    raise ValueError(f"{where}: bad metric name")
                if name in done or (current and current != name):
                    if name in done:
                        raise ValueError(f"{where}: family {name} interleaved")
                    done.add(current)
                current = name
                if parts[1] == "HELP":
                    if name in helps:
                        raise ValueError(f"{where}: second HELP")
                    if len(parts) < 4 or not parts[3].strip():
                        raise ValueError(f"{where}: empty HELP")
                    if re.search(r"\\[^\\n]", parts[3]):
                        raise ValueError(f"{where}: bad escape in HELP")
                    helps.add(name)
                else:
                    if name in types:
                        raise ValueError(f"{where}: second TYPE")
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ValueError(f"{where}: bad TYPE")
                    if any(family_of(s[0], {name: parts[3]}) == name for s in samples):
                        raise ValueError(f"{where}: TYPE after samples")
                    types[name] = parts[3]
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"{where}: not a sample line")
        name, labels = m.group(1), parse_labels(m.group(3) or "")
        value = parse_float(m.group(4))
        fam = family_of(name, types)
        if fam not in types:
            raise ValueError(f"{where}: sample without a TYPE")
        if fam in done or (current and current != fam):
            raise ValueError(f"{where}: family {fam} interleaved")
        current = fam
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ValueError(f"{where}: series twice")
        t = types[fam]
        if t == "histogram":
            if name == fam:
                raise ValueError(f"{where}: histogram sample without a suffix")
            if name.endswith("_bucket") != ("le" in labels):
                raise ValueError(f"{where}: le only (and always) on _bucket")
            if "le" in labels:
                parse_float(labels["le"])
        elif "le" in labels and t != "untyped":
            raise ValueError(f"{where}: le on a {t}")
        if t == "counter" and (value < 0 or math.isnan(value)):
            raise ValueError(f"{where}: counter below zero")
        samples[key] = value
    for fam, t in types.items():
        if fam not in helps:
            raise ValueError(f"{fam}: no HELP")
        if t == "counter" and not fam.endswith("_total"):
            raise ValueError(f"{fam}: a counter's name ends in _total")
        if t == "histogram":
            check_histogram(fam, samples)
    return samples, types


def check_histogram(fam, samples):
    """Buckets per label set: ascending le, cumulative, +Inf == _count; _sum
    present; and the sum cannot exceed count x the largest finite bound
    unless something landed in +Inf only."""
    groups = {}
    for (name, labels), v in samples.items():
        if not name.startswith(fam + "_"):
            continue
        rest = frozenset((k, x) for k, x in labels if k != "le")
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            g["buckets"].append((parse_float(dict(labels)["le"]), v))
        elif name == fam + "_sum":
            g["sum"] = v
        elif name == fam + "_count":
            g["count"] = v
    for rest, g in groups.items():
        b = sorted(g["buckets"])
        what = f"{fam}{dict(rest)}"
        if not b or b[-1][0] != math.inf:
            raise ValueError(f"{what}: no +Inf bucket")
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError(f"{what}: buckets not cumulative: {b}")
        if g["count"] is None or g["sum"] is None:
            raise ValueError(f"{what}: _count or _sum missing")
        if b[-1][1] != g["count"]:
            raise ValueError(f"{what}: +Inf {b[-1][1]} != _count {g['count']}")
        if g["sum"] < 0:
            raise ValueError(f"{what}: negative _sum")


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


# ---- servers ----------------------------------------------------------------

class Server(rf_test.Serve):
    """quiet: --log-level warn, which hides the "listening on" line, so the
    port is picked here and the server polled until it answers."""

    def __init__(self, workdir, tag, quiet=False, env=None):
        super().__init__(BIN, "sqlite:" + os.path.join(workdir, f"{tag}.db"),
                         os.path.join(workdir, f"{tag}.log"),
                         args=("--log-level", "warn") if quiet else (),
                         port=rf_test.free_port() if quiet else 0, env=env, merge=True)
        self.start(timeout=10)
        w = re.search(r"created workspace 'default' \((ws_\w+)\)", self.text())
        self.key = self.root_key()
        self.ws = w.group(1) if w else None

    def request(self, method, path, body=None, key=None, auth=True, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {}
        if auth and self.key:
            headers["Authorization"] = "Bearer " + self.key
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        if key:
            headers["Idempotency-Key"] = key
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if not conn:
            c.close()
        return r.status, dict(r.getheaders()), data


def scrape(srv):
    st, h, body = srv.request("GET", "/metrics", auth=False)
    return st, h, body.decode("utf-8")


def promtool(text):
    exe = shutil.which("promtool")
    if not exe:
        return None, "promtool not installed (Debian: prometheus)"
    p = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return p.returncode == 0, (p.stdout + p.stderr).decode()[-600:]


def validate(tag, text):
    try:
        samples, types = parse_exposition(text)
        check(f"{tag}: strict 0.0.4 parse", True)
    except ValueError as e:
        check(f"{tag}: strict 0.0.4 parse", False, str(e))
        return {}
    ok, out = promtool(text)
    if ok is None:
        print(f"# skip {tag}: promtool: {out}")
    else:
        check(f"{tag}: promtool check metrics", ok, out)
    return samples


# ---- the test ---------------------------------------------------------------

def main_server(workdir):
    # One injected SQLITE_BUSY, on the first write a handler makes.
    srv = Server(workdir, "main", env={"RACEFREE_FAULTS": "sqlite.busy=once"})
    try:
        st, h, text0 = scrape(srv)
        check("scrape: 200 and the 0.0.4 content type",
              st == 200 and h.get("Content-Type") == CTYPE, f"{st} {h.get('Content-Type')}")
        s0 = validate("first scrape", text0)

        rids, n = [], 0  # request ids seen, requests made after the first scrape

        def req(*a, **k):
            nonlocal n
            n += 1
            st, h, body = srv.request(*a, **k)
            rids.append((h.get("X-Request-Id"), st))
            return st, body

        for _ in range(3):
            req("GET", "/healthz", auth=False)
        st1, _ = req("GET", "/no/such/path", auth=False)
        st2, _ = req("DELETE", "/healthz", auth=False)
        st3, _ = req("GET", "/v1/users", auth=False)
        u = {"email": "ada@example.com"}
        st4, b4 = req("POST", "/v1/users", u, key="k1")          # reserved, completed, busy retry
        st5, b5 = req("POST", "/v1/users", u, key="k1")          # replayed
        st6, _ = req("POST", "/v1/users", {"email": "ADA@example.com"}, key="k2")  # existing
        st7, _ = req("POST", "/v1/users", {"email": "bob@example.com"}, key="k1")  # reused
        st8, _ = req("POST", "/v1/identities", {"externalId": "x1"})               # 201
        st9, _ = req("POST", "/v1/identities", {"externalId": "x1"})               # 409
        st10, _ = req("POST", "/v1/identities", {"externalId": "x1"}, key="k3")    # 409, released
        # A key limited to one verify a day: one passes, one is limited.
        stk, bk = req("POST", "/v1/keys", {"ratelimits": [{"name": "d", "limit": 1,
                                                           "duration": 86400000}]})
        plain = json.loads(bk)["key"] if stk == 201 else "rf_none"
        codes = [json.loads(req("POST", "/v1/keys/verify", {"key": plain})[1])["code"]
                 for _ in range(2)]
        check("setup: a limit of one passes one verify", codes == ["VALID", "RATE_LIMITED"],
              str(codes))
        check("setup: the statuses the counters rely on",
              [st1, st2, st3, st4, st5, st6, st7, st8, st9, st10] ==
              [404, 405, 401, 201, 201, 200, 422, 201, 409, 409],
              str([st1, st2, st3, st4, st5, st6, st7, st8, st9, st10]))
        check("setup: the replay is the stored response", b4 == b5)

        st, h, text1 = scrape(srv)
        s1 = validate("second scrape", text1)

        def delta(name, **labels):
            return val(s1, name, **labels) - val(s0, name, **labels)

        R = "racefree_http_requests_total"
        want = [
            (R, {"route": "healthz", "code": "200"}, 3),
            (R, {"route": "unmatched", "code": "404"}, 1),
            (R, {"route": "unmatched", "code": "405"}, 1),
            (R, {"route": "users.list", "code": "401"}, 1),
            (R, {"route": "users.create", "code": "201"}, 2),
            (R, {"route": "users.create", "code": "200"}, 1),
            (R, {"route": "users.create", "code": "422"}, 1),
            (R, {"route": "identities.create", "code": "201"}, 1),
            (R, {"route": "identities.create", "code": "409"}, 2),
            (R, {"route": "metrics", "code": "200"}, 1),  # the first scrape
            ("racefree_http_conflicts_total", {"code": "identity_exists"}, 2),
            ("racefree_http_conflicts_total", {"code": "username_taken"}, 0),
            ("racefree_create_existing_total", {"resource": "users"}, 1),
            ("racefree_db_retries_total", {"reason": "busy"}, 1),
            ("racefree_db_retries_total", {"reason": "other"}, 0),
            ("racefree_idempotency_outcomes_total", {"outcome": "reserved"}, 3),
            ("racefree_idempotency_outcomes_total", {"outcome": "replayed"}, 1),
            ("racefree_idempotency_outcomes_total", {"outcome": "reused"}, 1),
            ("racefree_idempotency_outcomes_total", {"outcome": "completed"}, 2),
            ("racefree_idempotency_outcomes_total", {"outcome": "released"}, 1),
            ("racefree_idempotency_outcomes_total", {"outcome": "in_progress"}, 0),
            ("racefree_idempotency_outcomes_total", {"outcome": "taken_over"}, 0),
            ("racefree_ratelimit_outcomes_total", {"outcome": "passed"}, 1),
            ("racefree_ratelimit_outcomes_total", {"outcome": "limited"}, 1),
            # each request on its own connection, and the scrape's own
            ("racefree_http_connections_total", {}, n + 1),
        ]
        bad = [f"{name}{labels}: +{delta(name, **labels):g}, want +{d}"
               for name, labels, d in want if delta(name, **labels) != d]
        check("counters moved by exactly what the requests did", not bad, "; ".join(bad))
        total = sum(v for (name, _), v in s1.items() if name == R)
        total0 = sum(v for (name, _), v in s0.items() if name == R)
        check("no other request was counted", total - total0 == n + 1,
              f"+{total - total0:g}, want +{n + 1}")

        H = "racefree_http_request_duration_seconds"
        hbad = []
        for route in ("healthz", "users.create", "identities.create", "unmatched"):
            by_code = sum(v for (name, lab), v in s1.items()
                          if name == R and dict(lab)["route"] == route)
            if val(s1, H + "_count", route=route) != by_code:
                hbad.append(f"{route}: _count {val(s1, H + '_count', route=route):g} != "
                            f"requests {by_code:g}")
            if not 0 < val(s1, H + "_sum", route=route) < by_code * 10:
                hbad.append(f"{route}: implausible _sum {val(s1, H + '_sum', route=route)}")
        # The busy retry sleeps ≥ 100 µs; nothing here takes 10 s.
        if val(s1, H + "_bucket", route="healthz", le="10") != val(s1, H + "_count",
                                                                  route="healthz"):
            hbad.append("a /healthz above 10 s")
        check("histograms: _count per route equals its requests", not hbad, "; ".join(hbad))

        # Label values come from closed sets: no workspace, key, path or id.
        leaks = [s for s in (srv.key, srv.ws, "/no/such/path", "ada@", "x1", "k1")
                 if s and s in text1]
        routes = {dict(lab).get("route") for (_, lab) in s1}
        check("page: no workspace id, key, path or client value", not leaks, str(leaks))
        check("page: route labels are route names", "/no/such/path" not in routes and
              routes >= {"healthz", "unmatched", "users.create"}, str(routes))

        # Open connections: three held idle after a request each, then closed.
        conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30) for _ in range(3)]
        for c in conns:
            srv.request("GET", "/healthz", auth=False, conn=c)
        _, _, t = scrape(srv)
        held = val(parse_exposition(t)[0], "racefree_http_open_connections")
        for c in conns:
            c.close()
        deadline, now_open = time.monotonic() + 10, None
        while time.monotonic() < deadline:
            _, _, t = scrape(srv)
            now_open = val(parse_exposition(t)[0], "racefree_http_open_connections")
            if now_open == 1:
                break
            time.sleep(0.05)
        check("open connections: 3 idle + the scrape, then the scrape alone",
              held == 4 and now_open == 1, f"held {held:g}, after close {now_open}")

        start = val(s1, "process_start_time_seconds")
        check("process_start_time_seconds is a recent epoch time",
              time.time() - 120 < start <= time.time() + 1, f"{start}")

        # The log: one JSON line per request, found by its request id.
        time.sleep(0.2)  # the line is written when the connection thread completes
        lines = {}
        for ln in srv.text().splitlines():
            if ln.startswith("{"):
                try:
                    j = json.loads(ln)
                except ValueError:
                    continue
                lines.setdefault(j.get("requestId"), []).append(j)
        missing, wrong = [], []
        for rid, st in rids:
            got = lines.get(rid, [])
            if len(got) != 1:
                missing.append(f"{rid}: {len(got)} lines")
                continue
            j = got[0]
            keys = {"time", "level", "requestId", "method", "path", "route", "status",
                    "durationUs", "workspaceId"}
            if not keys <= set(j) or j["status"] != st or not re.fullmatch(
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", j["time"]):
                wrong.append(ln)
        check("log: one JSON line per request, with its status and time",
              not missing and not wrong, "; ".join(missing + wrong[:2]))
        authed = [lines[rid][0] for rid, st in rids if rid in lines and
                  lines[rid][0]["route"] in ("users.create", "identities.create")]
        check("log: workspace id on authenticated requests, never the key",
              authed and all(j["workspaceId"] == srv.ws for j in authed) and
              all(srv.key not in json.dumps(j) for v in lines.values() for j in v),
              str(authed[:1]))
    finally:
        srv.stop()


def quiet_server(workdir):
    """--log-level warn: no request lines; an error names its request."""
    srv = Server(workdir, "quiet", quiet=True, env={"RACEFREE_FAULTS": "sqlite.busy=1"})
    try:
        st, h, _ = srv.request("POST", "/v1/users", {"email": "c@example.com"})
        rid = h.get("X-Request-Id", "?")
        srv.request("GET", "/healthz", auth=False)
        _, _, text = scrape(srv)
        s = validate("quiet server scrape", text)
        time.sleep(0.2)
        log = srv.text()
        errs = [ln for ln in log.splitlines() if rid in ln]
        check("warn level: a 503 after the retry budget, logged with its request id",
              st == 503 and len(errs) == 1 and " warn: " in errs[0], f"{st} {errs}")
        check("warn level: no request lines", '"requestId"' not in log, log[-300:])
        check("retries: every retry of an exhausted budget is counted, as busy",
              val(s, "racefree_db_retries_total", reason="busy") == 31 and  # RF_TX_MAX_ATTEMPTS - 1
              val(s, "racefree_http_requests_total", route="users.create", code="503") == 1,
              f"{val(s, 'racefree_db_retries_total', reason='busy')}")
    finally:
        srv.stop()


def main():
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("!! metrics tests: 120 s limit reached"))
    signal.alarm(120)
    if not os.access(BIN, os.X_OK):
        sys.exit(f"no {BIN}: build it first (make check)")
    # The parser must reject what it claims to: a few malformed pages.
    bad_pages = {
        "duplicate series": "# HELP a_total h\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "no TYPE": "a_total 1\n",
        "decreasing buckets": "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                              "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "+Inf != count": "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
                         "h_sum 1\nh_count 3\n",
        "bad escape": "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"\\q\"} 1\n",
        "interleaved": "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\"} 1\n"
                       "# HELP b b\n# TYPE b gauge\nb 1\na_total{x=\"2\"} 1\n",
        "no newline at end": "# HELP b b\n# TYPE b gauge\nb 1",
        "counter without _total": "# HELP b b\n# TYPE b counter\nb 1\n",
    }
    rejected = []
    for why, page in bad_pages.items():
        try:
            parse_exposition(page)
        except ValueError:
            rejected.append(why)
    check("strict parser rejects malformed pages", len(rejected) == len(bad_pages),
          f"accepted: {set(bad_pages) - set(rejected)}")
    workdir = tempfile.mkdtemp(prefix="rf-metrics-test.")
    try:
        for t in (main_server, quiet_server):
            try:
                t(workdir)
            except Exception as e:  # a crash in one part still reports the rest
                check(t.__name__, False, repr(e))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(tally.summary())


main()
