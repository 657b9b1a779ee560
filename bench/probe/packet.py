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
import ctypes
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

    def __init__(self, ports):
        self.ports = set(ports)
        self.lock = threading.Lock()
        self.flows = {}
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        self.s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.filter(sorted(self.ports) + [9])
        self.s.bind(("lo", 0))
        self.s.settimeout(0.2)
        self.stop = False
        self.token = None
        self.seen = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def filter(self, ports):
        """A classic BPF program, so that the kernel hands over only arriving
        IPv4 TCP/UDP segments for our ports (and the barrier's UDP port 9):
        everything else on lo would only make the tap fall behind and drop."""
        ld_w_abs, ld_h_abs, ld_b_abs, ld_h_ind, ldx_msh = 0x20, 0x28, 0x30, 0x48, 0xB1
        jeq, ret = 0x15, 0x06
        prog = [
            (ld_w_abs, 0, 0, 0xFFFFF004),  # SKF_AD_OFF + SKF_AD_PKTTYPE
            (jeq, 0, "drop", 0),  # PACKET_HOST: arriving, not the copy leaving
            (ld_h_abs, 0, 0, 12),
            (jeq, 0, "drop", 0x0800),
            (ld_b_abs, 0, 0, 23),
            (jeq, "port", 0, 6),
            (jeq, "port", "drop", 17),
            ("port", ldx_msh, 0, 0, 14),
            (ld_h_ind, 0, 0, 16),
        ]
        for p in ports:
            prog.append((jeq, "accept", 0, p))
        prog += [("drop", ret, 0, 0, 0), ("accept", ret, 0, 0, 0x40000)]
        labels, code = {}, []
        for ins in prog:
            if isinstance(ins[0], str):
                labels[ins[0]] = len(code)
                ins = ins[1:]
            code.append(list(ins))
        raw = b""
        for i, (op, jt, jf, k) in enumerate(code):
            jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
            jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
            raw += struct.pack("HBBI", op, jt, jf, k)
        buf = ctypes.create_string_buffer(raw)
        self.bpf = buf  # must outlive the setsockopt
        fprog = struct.pack("HL", len(code), ctypes.addressof(buf))
        self.s.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER

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
            if dport not in self.ports:
                continue
            payload = tcp[(tcp[12] >> 4) * 4:]
            if not payload:
                continue
            with self.lock:
                f = self.flows.setdefault((dport, sport), {"buf": b"", "next": None, "finals": [],
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

    def arrivals(self, port):
        """One time per request sent to port: END_STREAM frames (h2), else the
        last request segment of each connection (HTTP/1.1, one request per
        connection)."""
        self.barrier()
        with self.lock:
            out = []
            for (dport, _), f in self.flows.items():
                if dport != port:
                    continue
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


def start_node(delay_us):
    p = subprocess.Popen(["node", os.path.join(HERE, "racy_h2.js"), str(delay_us), "1800"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().split()
    if len(line) != 4:
        p.kill()
        sys.exit("racy_h2.js did not start")
    return p, int(line[1]), int(line[3])


# key: (label, service, how, where the requests go, the port the tap watches)
CLIENTS = [
    ("packet-proxy", "probe --h2c --sync packet → nghttpx → C fixture", "fixture", "packet",
     "proxy", "proxy"),
    ("lastbyte-proxy", "probe --sync lastbyte → nghttpx (HTTP/1.1) → C fixture", "fixture",
     "lastbyte", "proxy", "proxy"),
    ("lastbyte", "probe --sync lastbyte → C fixture", "fixture", "lastbyte", "fixture", None),
    ("node", "Node Promise.all(fetch) → C fixture", "fixture", "node", "fixture", None),
    ("packet-node", "probe --h2c --sync packet → Node h2c", "nodesvc", "packet", "node_h2",
     "node_h2"),
    ("lastbyte-node", "probe --sync lastbyte → Node HTTP/1.1", "nodesvc", "lastbyte", "node_h1",
     "node_h1"),
    ("node-node", "Node Promise.all(fetch) → Node HTTP/1.1", "nodesvc", "node", "node_h1",
     "node_h1"),
]


def fire(how, n, base, email, binary):
    if how == "node":
        cmd = ["node", os.path.join(HERE, "promise_all.js"), base + "/v1/users", str(n), email]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.DEVNULL)
        return
    args = ["--h2c"] if how == "packet" else ["--sync", "lastbyte"]
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
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    nghttpx_version = subprocess.run(["nghttpx", "--version"], capture_output=True,
                                     text=True).stdout.strip()
    node_version = subprocess.run(["node", "--version"], capture_output=True,
                                  text=True).stdout.strip()

    # A private copy: a rebuild during the run must not change the client.
    tmp = tempfile.mkdtemp(prefix="rf-packet-bench.")
    binary = os.path.join(tmp, "racefree")
    shutil.copy2(a.bin, binary)
    fx, fixture = start_fixture(a.fixture, a.delay_us)
    pport = free_port()
    px = start_proxy(int(fixture.rsplit(":", 1)[1]), pport)
    nd, nh1, nh2 = start_node(a.delay_us)
    ports = {"proxy": pport, "node_h1": nh1, "node_h2": nh2}
    bases = {"fixture": fixture, "proxy": "http://127.0.0.1:%d" % pport,
             "node_h1": "http://127.0.0.1:%d" % nh1, "node_h2": "http://127.0.0.1:%d" % nh2}
    services = {"fixture": fixture, "nodesvc": bases["node_h1"]}
    tap = Tap(ports.values())
    rows = []
    try:
        drops0 = tap.drops()
        for n in ns:
            for key, label, svc, how, where, tapped in CLIENTS:
                sv = services[svc]
                at_tap, at_app, dups, short = [], [], [], 0
                for k in range(a.bursts):
                    http("POST", sv + "/reset")
                    tap.reset()
                    email = "pkt-%d-%s-%d@example.com" % (n, key, k)
                    fire(how, n, bases[where], email, binary)
                    # Before the reads below, which may go to the same port.
                    if tapped:
                        t = tap.arrivals(ports[tapped])
                        if len(t) != n:
                            short += 1
                        at_tap.append(spread(t))
                    arr = http("GET", sv + "/arrivals")["arrivals"]
                    users = http("GET", sv + "/v1/users?email=" + email)["data"]
                    at_app.append(spread(arr))
                    dups.append(max(len(users) - 1, 0))
                row = {"n": n, "key": key, "label": label, "tap": med(at_tap),
                       "tap_min": min([x for x in at_tap if x is not None], default=None),
                       "tap_max": max([x for x in at_tap if x is not None], default=None),
                       "app": med(at_app), "dup_median": statistics.median(dups),
                       "dup_mean": statistics.mean(dups),
                       "caught": sum(1 for d in dups if d > 0), "short": short}
                rows.append(row)
                print("n=%-4d %-15s at the socket %s µs (min %s, max %s)  at the application "
                      "%s µs  duplicates median %.1f mean %.1f in %d/%d%s" % (
                          n, key, cell(row["tap"]), cell(row["tap_min"]), cell(row["tap_max"]),
                          cell(row["app"]), row["dup_median"], row["dup_mean"], row["caught"],
                          a.bursts, ("  (%d bursts with fewer tapped arrivals than requests)"
                                     % short) if short else ""), flush=True)
        drops = tap.drops() + drops0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        tap.close()
        for p in (px, fx, nd):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    cmd = "python3 bench/probe/packet.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out = [MARK, "", "## HTTP/2 single-packet (`--sync packet`)", ""]
    out.append("Generated by `%s` (also `make probe-bench-packet`, as root) on %s; %s, %d CPUs "
               "(shared with other work during the run), kernel %s, %s, Node %s. %d bursts per "
               "cell, one fresh email per burst, check-then-insert gap %d µs in both services."
               "\n" % (cmd.strip(), started, platform.machine(), os.cpu_count(),
                        platform.release(), nghttpx_version, node_version, a.bursts, a.delay_us))
    out.append("Two racy services: the C fixture (`tests/fixtures/racy_server.c`, HTTP/1.1 only, "
               "reached over HTTP/2 through nghttpx: h2c frontend, HTTP/1.1 backend) and "
               "`bench/probe/racy_h2.js` (Node, the same check-then-insert, one store served "
               "over h2c and HTTP/1.1 on two ports, so HTTP/2 reaches it with no proxy "
               "between). Spreads (max − min within one burst; median, min and max over the "
               "bursts):\n")
    out.append("- *at the socket*: kernel receive times of the segments reaching the server's "
               "port (a packet socket on lo, SO_TIMESTAMPNS): a request arrives with the "
               "segment that completes its END_STREAM frame (h2) or its connection's last "
               "request segment (HTTP/1.1). Every final frame on one connection comes in one "
               "segment, so with one connection (N ≤ 100) the packet spread is 0 by "
               "construction; at N=500 it is the gap between 5 connections' writes.")
    out.append("- *at the application*: the C fixture's SO_TIMESTAMPNS stamp of each request's "
               "final byte — behind nghttpx, that is when the proxy forwarded it, one backend "
               "write per request, not the client's spread; Node: `process.hrtime` when the "
               "request's body was complete (its event loop's view).")
    out.append("- *duplicates*: rows created for the one email, minus one.\n")
    out.append("| N | client → server | spread at the socket, median (µs) | min | max | spread "
               "at the application, median (µs) | duplicates/burst median | mean | bursts "
               "with duplicates |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append("| %d | %s | %s | %s | %s | %s | %.1f | %.1f | %d/%d |" % (
            r["n"], r["label"], cell(r["tap"]), cell(r["tap_min"]), cell(r["tap_max"]),
            cell(r["app"]), r["dup_median"], r["dup_mean"], r["caught"], a.bursts))
    out.append("")
    if drops:
        out.append("The packet socket dropped %d segments: spreads at the socket may miss "
                   "requests.\n" % drops)
    short = [r for r in rows if r["short"]]
    if short:
        out.append("Bursts with fewer arrivals at the socket than requests (a request whose "
                   "connection carried more than one, or a segment the tap did not see): %s.\n"
                   % ", ".join("%s N=%d: %d" % (r["key"], r["n"], r["short"]) for r in short))

    def get(n, key):
        return next(r for r in rows if r["n"] == n and r["key"] == key)

    out.append("Issue 16 targets (packet median ≤ 100 µs at N=100, ≥ 10× tighter than "
               "lastbyte, duplicates per burst ≥ lastbyte's), spreads at the socket:")
    for n in ns:
        for pk, lb, what in (("packet-node", "lastbyte-node", "Node service, direct"),
                             ("packet-proxy", "lastbyte-proxy", "C fixture via nghttpx")):
            p, l = get(n, pk), get(n, lb)
            if p["tap"] is None or l["tap"] is None:
                continue
            if p["tap"]:
                ratio = l["tap"] / p["tap"]
                rs = "%.0f× tighter" % ratio
            else:
                ratio, rs = float("inf"), "no finite ratio (one segment)"
            line = "- N=%d, %s: packet %s µs, lastbyte %s µs: %s" % (
                n, what, fmt_us(p["tap"]), fmt_us(l["tap"]), rs)
            if n == 100:
                line += " (≤ 100 µs: %s; ≥ 10×: %s)" % (
                    "met" if p["tap"] <= 100000 else "NOT met",
                    "met" if ratio >= 10 else "NOT met")
            line += "; duplicates median %.1f vs %.1f: %s" % (
                p["dup_median"], l["dup_median"],
                "met" if p["dup_median"] >= l["dup_median"] else "NOT met")
            if pk == "packet-proxy":
                d = get(n, "lastbyte")
                line += "; vs lastbyte straight at the fixture %.1f: %s" % (
                    d["dup_median"], "met" if p["dup_median"] >= d["dup_median"] else "NOT met")
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
