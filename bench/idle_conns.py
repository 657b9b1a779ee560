#!/usr/bin/env python3
"""Hold N idle keep-alive connections to a server (issue 7 B7).

    idle_conns.py HOST PORT N [HOLD_S]

Opens N TCP connections, sends one `GET /healthz` (HTTP/1.1, keep-alive) on
each and reads its response, so every connection is established in the
server and then idle. Prints "ready N" on stdout and holds them until
SIGTERM, or HOLD_S seconds (default 120) so that it can never linger. Exit 1
when fewer than N could be opened or answered.
"""
import resource
import signal
import socket
import sys
import time


def read_response(s):
    """Reads one response with a Content-Length body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        raise ConnectionError(f"status {status}")


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        want = n + 64 if hard == resource.RLIM_INFINITY else min(hard, n + 64)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    req = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    conns = []
    try:
        for _ in range(n):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(req)
            read_response(s)
            conns.append(s)
    except (OSError, ConnectionError, ValueError) as e:
        print(f"idle_conns: {len(conns)} of {n} open: {e}", file=sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"ready {len(conns)}", flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main()
