#!/usr/bin/env python3
"""Arrival spread of `racefree probe --sync packet` (HTTP/2 single-packet)
beside `--sync lastbyte` and Node's Promise.all (issue 16).

The racy fixture speaks HTTP/1.1 only, so the HTTP/2 client reaches it
through nghttpx (h2c frontend, HTTP/1.1 backend). Behind the proxy the
fixture's kernel timestamps measure when *nghttpx* forwarded each request,
not when the requests reached an HTTP/2 server, so the spread is measured at
two places:

- *at the HTTP/2 server's socket*: a packet socket on lo (AF_PACKET, kernel
  receive timestamps, SO_TIMESTAMPNS) sees every segment sent to nghttpx's
  port; a request has arrived when the segment completing its END_STREAM
  frame does (h2), or its connection's last request segment does (HTTP/1.1,
  one request per connection). This is where the single packet lands, and
  where any HTTP/2 server would first see the requests.
- *at the fixture* (its SO_TIMESTAMPNS arrival stamps, as spread.py): for the
  direct clients that is the server; behind nghttpx it includes the proxy's
  own forwarding, one backend write per request.

Duplicates (rows for the one email, minus one) are counted at the fixture for
every client: that is the race actually provoked end to end.

Clients, all in one run: probe --h2c --sync packet through nghttpx; probe
--sync lastbyte through the same nghttpx port (HTTP/1.1), measured at the same
two places; probe --sync lastbyte and Node Promise.all straight at the
fixture (the reference of spread.py). Needs root for the packet socket.

usage: bench/probe/packet.py [--bin build/racefree] [--fixture build/probe-fixture]
                             [--bursts 20] [--ns 20,100,500] [--out bench/probe/RESULTS.md]
The table replaces the part of --out after the line MARK (spread.py keeps it).
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spread import fmt_us, http, start_fixture  # noqa: E402

MARK = "<!-- bench/probe/packet.py: everything below is rewritten by it -->"
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_STATISTICS = 6
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Tap:
    """Kernel receive times of the request bytes sent to one TCP port on lo."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.flows = {}
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.s.bind(("lo", 0))
        self.s.settimeout(0.2)
        self.stop = False
        self.token = None
        self.seen = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def drops(self):
        st = self.s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return struct.unpack("II", st)[1]

    def barrier(self):
        """Returns once the tap has read every segment sent before the call:
        it lags behind the kernel while a large burst's segments queue up."""
        self.token = os.urandom(8)
        self.seen.clear()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(self.token, ("127.0.0.1", 9))
        u.close()
        if not self.seen.wait(30):
            sys.exit("the packet socket saw nothing for 30 s")

    def reset(self):
        self.barrier()
        with self.lock:
            self.flows = {}

    def run(self):
        while not self.stop:
            try:
                data, anc, _, addr = self.s.recvmsg(70000, 64)
            except socket.timeout:
                continue
            # On lo every segment is seen leaving and arriving: keep arrivals.
            if addr[2] != socket.PACKET_HOST or len(data) < 14 + 20:
                continue
            ts = None
            for lvl, typ, val in anc:
                if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec * 1000000000 + nsec
            ip = data[14:]
            ver = ip[0] >> 4
            if ver == 4:
                ihl, proto, total = (ip[0] & 15) * 4, ip[9], struct.unpack("!H", ip[2:4])[0]
            elif ver == 6:
                ihl, proto, total = 40, ip[6], 40 + struct.unpack("!H", ip[4:6])[0]
            else:
                continue
            if proto == 17 and self.token and ip[ihl + 8:total] == self.token:
                self.seen.set()
                continue
            if proto != 6:
                continue
            tcp = ip[ihl:total]
            sport, dport, seq = struct.unpack("!HHI", tcp[:8])
            if dport != self.port:
                continue
            payload = tcp[(tcp[12] >> 4) * 4:]
            if not payload:
                continue
            with self.lock:
                f = self.flows.setdefault(sport, {"buf": b"", "next": None, "finals": [],
                                                  "last": None, "h2": None})
                if f["next"] is not None and seq != f["next"]:
                    if (seq - f["next"]) & 0x80000000:  # a retransmission: skip what we have
                        cut = (f["next"] - seq) & 0xFFFFFFFF
                        payload = payload[cut:] if cut < len(payload) else b""
                        seq = f["next"]
                f["next"] = (seq + len(payload)) & 0xFFFFFFFF
                if payload:
                    self.feed(f, payload, ts)

    @staticmethod
    def feed(f, payload, ts):
        f["last"] = ts
        f["buf"] += payload
        if f["h2"] is None:
            if len(f["buf"]) < len(PREFACE):
                return
            f["h2"] = f["buf"].startswith(PREFACE)
            if f["h2"]:
                f["buf"] = f["buf"][len(PREFACE):]
        if not f["h2"]:
            f["buf"] = b""
            return
        b = f["buf"]
        while len(b) >= 9:
            n = int.from_bytes(b[:3], "big")
            if len(b) < 9 + n:
                break
            typ, flags = b[3], b[4]
            if typ in (0, 1) and flags & 1:  # DATA or HEADERS with END_STREAM
                f["finals"].append(ts)
            b = b[9 + n:]
        f["buf"] = b

    def arrivals(self):
        """One time per request: END_STREAM frames (h2), else the last request
        segment of each connection (HTTP/1.1, one request per connection)."""
        self.barrier()
        with self.lock:
            out = []
            for f in self.flows.values():
                if f["h2"]:
                    out += f["finals"]
                elif f["last"] is not None:
                    out.append(f["last"])
            return out

    def close(self):
        self.stop = True
        self.t.join()
        self.s.close()


def start_proxy(backend_port, port):
    p = subprocess.Popen(["nghttpx", "--conf=/dev/null", "--workers=1", "--no-ocsp",
                          "-f127.0.0.1,%d;no-tls" % port, "-b127.0.0.1,%d" % backend_port,
                          "--errorlog-file=/dev/null", "--accesslog-file=/dev/null"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    sys.exit("nghttpx did not start")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fire(client, n, fixture, proxy, email, binary):
    if client == "node":
        cmd = ["node", os.path.join(HERE, "promise_all.js"), fixture + "/v1/users", str(n), email]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.DEVNULL)
        return
    if client == "packet":
        args, base = ["--h2c"], proxy
    elif client == "lastbyte-proxy":
        args, base = ["--sync", "lastbyte"], proxy
    else:
        args, base = ["--sync", "lastbyte"], fixture
    cmd = [binary, "probe", "-n", str(n), "--json", "--timeout", "60000"] + args
    cmd += ["-d", json.dumps({"email": email}), base + "/v1/users"]
    r = subprocess.run(cmd, timeout=120, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        sys.exit("probe failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))


def spread(xs):
    return max(xs) - min(xs) if xs else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def cell(ns):
    return "—" if ns is None else fmt_us(ns)


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
    clients = ["packet", "lastbyte-proxy", "lastbyte", "node"]
    names = {"packet": "probe --h2c --sync packet, via nghttpx",
             "lastbyte-proxy": "probe --sync lastbyte, via nghttpx (HTTP/1.1)",
             "lastbyte": "probe --sync lastbyte, direct",
             "node": "Node Promise.all(fetch), direct"}
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    nghttpx_version = subprocess.run(["nghttpx", "--version"], capture_output=True,
                                     text=True).stdout.strip()

    # A private copy: a rebuild during the run must not change the client.
    tmp = tempfile.mkdtemp(prefix="rf-packet-bench.")
    binary = os.path.join(tmp, "racefree")
    shutil.copy2(a.bin, binary)
    fx, fixture = start_fixture(a.fixture, a.delay_us)
    pport = free_port()
    px = start_proxy(int(fixture.rsplit(":", 1)[1]), pport)
    proxy = "http://127.0.0.1:%d" % pport
    tap = Tap(pport)
    rows = []
    try:
        drops0 = tap.drops()
        for n in ns:
            for client in clients:
                at_tap, at_fx, dups, short = [], [], [], 0
                for k in range(a.bursts):
                    http("POST", fixture + "/reset")
                    tap.reset()
                    email = "pkt-%d-%s-%d@example.com" % (n, client, k)
                    fire(client, n, fixture, proxy, email, binary)
                    arr = http("GET", fixture + "/arrivals")["arrivals"]
                    users = http("GET", fixture + "/v1/users?email=" + email)["data"]
                    if client in ("packet", "lastbyte-proxy"):
                        t = tap.arrivals()
                        if len(t) != n:
                            short += 1
                        at_tap.append(spread(t))
                    at_fx.append(spread(arr))
                    dups.append(max(len(users) - 1, 0))
                row = {"n": n, "client": client, "tap": med(at_tap),
                       "tap_min": min([x for x in at_tap if x is not None], default=None),
                       "tap_max": max([x for x in at_tap if x is not None], default=None),
                       "fx": med(at_fx), "dup_median": statistics.median(dups),
                       "dup_mean": statistics.mean(dups),
                       "caught": sum(1 for d in dups if d > 0), "short": short}
                rows.append(row)
                print("n=%-4d %-15s at h2 server %s µs (min %s, max %s)  at fixture %s µs  "
                      "duplicates median %.1f mean %.1f in %d/%d%s" % (
                          n, client, cell(row["tap"]), cell(row["tap_min"]),
                          cell(row["tap_max"]), cell(row["fx"]), row["dup_median"],
                          row["dup_mean"], row["caught"], a.bursts,
                          ("  (%d bursts with a request missing at the tap)" % short)
                          if short else ""), flush=True)
        drops = tap.drops() + drops0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        tap.close()
        for p in (px, fx):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    cmd = "python3 bench/probe/packet.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out = [MARK, "", "## HTTP/2 single-packet (`--sync packet`)", ""]
    out.append("Generated by `%s` (also `make probe-bench-packet`) on %s; %s, %d CPUs, "
               "kernel %s, %s. %d bursts per cell, fixture gap %d µs.\n" % (
                   cmd.strip(), started, platform.machine(), os.cpu_count(), platform.release(),
                   nghttpx_version, a.bursts, a.delay_us))
    out.append("The fixture speaks HTTP/1.1 only; the HTTP/2 client reaches it through nghttpx "
               "(h2c frontend, HTTP/1.1 backend), so spreads are measured at two places:\n")
    out.append("- *at the h2 server*: kernel receive times (a packet socket on lo, "
               "SO_TIMESTAMPNS) of the segments reaching nghttpx's port; a request arrives with "
               "the segment that completes its END_STREAM frame (h2) or its connection's last "
               "request segment (HTTP/1.1). This is where the single packet lands. Max − min "
               "per burst, median (min, max) over the bursts.")
    out.append("- *at the fixture*: its own SO_TIMESTAMPNS stamps. Behind nghttpx these are the "
               "proxy's forwarding times (one backend write per request), not the client's.")
    out.append("- *duplicates*: rows for the one email at the fixture, minus one.\n")
    out.append("| N | client | spread at the h2 server, median (µs) | min | max | spread at the "
               "fixture, median (µs) | duplicates/burst median | mean | bursts with duplicates |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append("| %d | %s | %s | %s | %s | %s | %.1f | %.1f | %d/%d |" % (
            r["n"], names[r["client"]], cell(r["tap"]), cell(r["tap_min"]), cell(r["tap_max"]),
            cell(r["fx"]), r["dup_median"], r["dup_mean"], r["caught"], a.bursts))
    out.append("")
    if drops:
        out.append("The packet socket dropped %d segments: the figures at the h2 server may miss "
                   "requests.\n" % drops)
    short = sum(r["short"] for r in rows)
    if short:
        out.append("%d bursts had fewer arrivals at the tap than requests (a request that "
                   "failed, or a segment not seen).\n" % short)
    out.append("Issue 16 targets, packet against lastbyte through the same proxy, at the h2 "
               "server:")
    for n in ns:
        pk = next(r for r in rows if r["n"] == n and r["client"] == "packet")
        lb = next(r for r in rows if r["n"] == n and r["client"] == "lastbyte-proxy")
        lbd = next(r for r in rows if r["n"] == n and r["client"] == "lastbyte")
        if pk["tap"] is None or lb["tap"] is None:
            continue
        # One connection's final frames share one segment, one kernel
        # timestamp: a spread of 0, and no finite ratio.
        ratio = lb["tap"] / pk["tap"] if pk["tap"] else float("inf")
        line = "- N=%d: packet median %s µs (%s), lastbyte %s µs: %s" % (
            n, fmt_us(pk["tap"]),
            "every final frame in one segment" if pk["tap"] == 0 else "%d connections" % (
                (n + 99) // 100),
            fmt_us(lb["tap"]), "%.0f× tighter" % ratio if pk["tap"] else "no finite ratio")
        if n == 100:
            line += " — target ≤ 100 µs: %s; ≥ 10× tighter: %s" % (
                "met" if pk["tap"] <= 100000 else "not met", "met" if ratio >= 10 else "not met")
        line += "; duplicates median %.1f vs %.1f via the proxy, %.1f for lastbyte direct" % (
            pk["dup_median"], lb["dup_median"], lbd["dup_median"])
        out.append(line)
    out.append("")

    text = ""
    if os.path.exists(a.out):
        with open(a.out) as f:
            text = f.read()
    head = text.split(MARK)[0].rstrip("\n")
    with open(a.out, "w") as f:
        f.write((head + "\n\n" if head else "") + "\n".join(out))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
