#!/usr/bin/env python3
"""Arrival-spread benchmark of `racefree probe` (issue 6, "Performance").

Fires bursts of N simultaneous "create user" requests at the racy fixture
server (tests/fixtures/racy_server.c), which records the kernel receive time of
every request's final byte. For each client and N it reports, over BURSTS
bursts, the arrival spread (max - min arrival time in one burst) and the
duplicates the burst provoked (rows for the one email, minus one).

Clients: racefree probe --sync lastbyte, racefree probe --sync none, and
Node's Promise.all of fetch (seed 002's reproduce.js), all in one run on the
same machine, so the ratios are comparable even where absolute figures are
the machine's.

usage: bench/probe/spread.py [--bin build/racefree] [--fixture build/probe-fixture]
                             [--bursts 20] [--ns 20,100,500] [--out bench/probe/RESULTS.md]
"""
import argparse
import json
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def http(method, url, timeout=30):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def start_fixture(path, delay_us):
    p = subprocess.Popen([path, "--port", "0", "--delay-us", str(delay_us),
                          "--max-seconds", "1800"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 5
    while time.time() < deadline:
        line = p.stderr.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return p, m.group(1)
    p.send_signal(signal.SIGTERM)
    sys.exit("fixture did not start")


def fire(client, n, base, email, binary):
    """Runs one burst; returns the probe's own send spread in ns when known."""
    if client == "node":
        cmd = ["node", os.path.join(HERE, "promise_all.js"), base + "/v1/users", str(n), email]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.DEVNULL)
        return None
    extra = []
    if client == "lastbyte-rt":
        # The same client with --rt: woken server threads can then no longer
        # preempt the release loop (needs CAP_SYS_NICE or RLIMIT_RTPRIO).
        extra, client = ["--rt"], "lastbyte"
    cmd = [binary, "probe", "-n", str(n), "--sync", client, "--json", "--timeout", "60000"]
    cmd += extra + ["-d", json.dumps({"email": email}), base + "/v1/users"]
    r = subprocess.run(cmd, timeout=120, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit("probe failed: %s\n%s" % (" ".join(cmd), r.stderr))
    doc = json.loads(r.stdout)
    s = doc["rounds"][0]["spread_us"]
    return None if s is None else s * 1000


def send_floor(n=100, loops=5):
    """Median cost of one 1-byte send() on established loopback TCP connections
    with nobody reading: the least any client can spend per request here, so
    N of them in a row bound the spread from below. Measured from Python, so
    it includes a fraction of a microsecond of interpreter overhead."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(n)
    cs, ss = [], []
    for _ in range(n):
        c = socket.create_connection(ls.getsockname())
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cs.append(c)
        ss.append(ls.accept()[0])
    per = []
    for _ in range(loops):
        t0 = time.perf_counter_ns()
        for c in cs:
            c.send(b"x")
        per.append((time.perf_counter_ns() - t0) / n)
        time.sleep(0.05)
    for x in cs + ss + [ls]:
        x.close()
    return statistics.median(per)


def fmt_us(ns):
    return "%.0f" % (ns / 1000) if ns >= 10000 else "%.1f" % (ns / 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./build/racefree")
    ap.add_argument("--fixture", default="./build/probe-fixture")
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--ns", default="20,100,500")
    ap.add_argument("--delay-us", type=int, default=1000)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    a = ap.parse_args()
    ns = [int(x) for x in a.ns.split(",")]
    clients = ["lastbyte", "none", "node"]
    if subprocess.run(["chrt", "-f", "1", "true"], capture_output=True).returncode == 0:
        clients.insert(1, "lastbyte-rt")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    node_version = subprocess.run(["node", "--version"], capture_output=True,
                                  text=True).stdout.strip()

    floor = send_floor()
    fx, base = start_fixture(a.fixture, a.delay_us)
    rows = []
    try:
        for n in ns:
            for client in clients:
                spreads, dups, sends = [], [], []
                unstamped = 0
                for k in range(a.bursts):
                    http("POST", base + "/reset")
                    email = "bench-%d-%s-%d@example.com" % (n, client, k)
                    send = fire(client, n, base, email, a.bin)
                    got = http("GET", base + "/arrivals")
                    arr = got["arrivals"]
                    unstamped += got.get("not_kernel_stamped", 0)
                    users = http("GET", base + "/v1/users?email=" + email)["data"]
                    if len(arr) != n:
                        print("  warning: %s n=%d burst %d: %d arrivals" % (client, n, k, len(arr)))
                    if arr:
                        spreads.append(max(arr) - min(arr))
                    dups.append(max(len(users) - 1, 0))
                    if send is not None:
                        sends.append(send)
                row = {
                    "n": n, "client": client,
                    "arrival_median": statistics.median(spreads),
                    "arrival_min": min(spreads), "arrival_max": max(spreads),
                    "send_median": statistics.median(sends) if sends else None,
                    "dup_median": statistics.median(dups), "dup_mean": statistics.mean(dups),
                    "caught": sum(1 for d in dups if d > 0),
                }
                if unstamped:
                    print("  warning: %d arrivals were not stamped by the kernel" % unstamped)
                rows.append(row)
                print("n=%-4d %-8s arrival spread median %s µs (min %s, max %s)  "
                      "duplicates/burst median %.1f, mean %.1f, in %d/%d bursts" % (
                          n, client, fmt_us(row["arrival_median"]), fmt_us(row["arrival_min"]),
                          fmt_us(row["arrival_max"]), row["dup_median"], row["dup_mean"],
                          row["caught"], a.bursts), flush=True)
    finally:
        fx.send_signal(signal.SIGTERM)
        try:
            fx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fx.kill()

    names = {"lastbyte": "probe --sync lastbyte", "none": "probe --sync none",
             "lastbyte-rt": "probe --sync lastbyte --rt",
             "node": "Node Promise.all(fetch)"}
    cmd = "python3 bench/probe/spread.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out = []
    out.append("# racefree probe: arrival spread and duplicates\n")
    out.append("Generated by `%s` (also `make probe-bench`) on %s.\n" % (cmd.strip(), started))
    out.append("Machine: %s, %d CPUs, kernel %s, Python %s, Node %s.\n" % (
        platform.machine(), os.cpu_count(), platform.release(), platform.python_version(),
        node_version))
    out.append("Target: the racy fixture `tests/fixtures/racy_server.c` (thread per connection, "
               "check-then-insert with a %d µs gap, no lock across it), which timestamps the "
               "final byte of every request with the kernel receive time (SO_TIMESTAMPNS). "
               "%d bursts per cell, one fresh email per burst; the fixture is reset before "
               "each burst.\n" % (a.delay_us, a.bursts))
    out.append("- *arrival spread*: max − min of the fixture's arrival times within one burst "
               "(median, min, max over the bursts).")
    out.append("- *send spread*: the probe's own report, first to last final byte handed to "
               "the kernel.")
    out.append("- *duplicates*: rows created for the one email, minus one (median and mean "
               "per burst), and the number of bursts that produced any.\n")
    out.append("| N | client | arrival spread median (µs) | min | max | probe send spread "
               "median (µs) | duplicates/burst median | mean | bursts with duplicates |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append("| %d | %s | %s | %s | %s | %s | %.1f | %.1f | %d/%d |" % (
            r["n"], names[r["client"]], fmt_us(r["arrival_median"]), fmt_us(r["arrival_min"]),
            fmt_us(r["arrival_max"]),
            "—" if r["send_median"] is None else fmt_us(r["send_median"]),
            r["dup_median"], r["dup_mean"], r["caught"], a.bursts))
    out.append("")
    out.append("Floor on this machine: one 1-byte send() on an established loopback TCP "
               "connection with nobody reading costs %.1f µs (median of 5 loops of 100, from "
               "Python), so N requests released one after another cannot land closer than "
               "about N × that: %.0f µs for N=100.\n" % (floor / 1000, floor * 100 / 1000))
    lb100 = next((r for r in rows if r["n"] == 100 and r["client"] == "lastbyte"), None)
    nd100 = next((r for r in rows if r["n"] == 100 and r["client"] == "node"), None)
    rt100 = next((r for r in rows if r["n"] == 100 and r["client"] == "lastbyte-rt"), None)
    if lb100 and nd100:
        best = min([lb100] + ([rt100] if rt100 else []), key=lambda r: r["arrival_median"])
        out.append("Issue 6 targets at N=100: lastbyte arrival spread ≤ 100 µs — %s (%s µs "
                   "median, %s); ≥ 10× tighter than Promise.all — %s (%.1f×).\n" % (
                       "met" if best["arrival_median"] <= 100000 else "not met",
                       fmt_us(best["arrival_median"]), names[best["client"]],
                       "met" if nd100["arrival_median"] >= 10 * best["arrival_median"]
                       else "not met", nd100["arrival_median"] / max(best["arrival_median"], 1)))
    out.append("Ratio of median arrival spreads, Promise.all / lastbyte:")
    for n in ns:
        lb = next(r for r in rows if r["n"] == n and r["client"] == "lastbyte")
        nd = next(r for r in rows if r["n"] == n and r["client"] == "node")
        no = next(r for r in rows if r["n"] == n and r["client"] == "none")
        out.append("- N=%d: %.1f× (none / lastbyte: %.1f×)" % (
            n, nd["arrival_median"] / max(lb["arrival_median"], 1),
            no["arrival_median"] / max(lb["arrival_median"], 1)))
        rt = next((r for r in rows if r["n"] == n and r["client"] == "lastbyte-rt"), None)
        if rt:
            out[-1] += "; Promise.all / lastbyte at real-time priority: %.1f×" % (
                nd["arrival_median"] / max(rt["arrival_median"], 1))
    out.append("")
    # Below the table: bench/probe/servers.py's section, then packet.py's
    # (from its marker to the end), kept as they are.
    tail = ""
    if os.path.exists(a.out):
        with open(a.out) as f:
            old = f.read()
        marks = [old.find(m) for m in ("<!-- servers:begin -->", "<!-- bench/probe/packet.py")]
        marks = [m for m in marks if m >= 0]
        if marks:
            tail = "\n" + old[min(marks):]
    with open(a.out, "w") as f:
        f.write("\n".join(out) + tail)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
