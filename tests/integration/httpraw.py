#!/usr/bin/env python3
"""httpraw.py: raw HTTP/1.1 over the broker's unix sockets, for the transport tests.

  httpraw.py send SOCK FILE [TIMEOUT]   sends FILE's bytes, prints the status line's code and
                                        the body; exit 3 if the broker kept the connection open
                                        for TIMEOUT s (default 10) without closing it
  httpraw.py hold SOCK N READY [RELEASE]  opens N connections (as many as the broker lets in
                                        within 20 s), writes how many to READY, keeps them idle
                                        until the file RELEASE exists (or forever)
  httpraw.py slow SOCK INTERVAL LIMIT   sends a request one byte every INTERVAL s; prints the
                                        seconds until the broker closed it (exit 3 past LIMIT s)
  httpraw.py timing SOCK PATH_A PATH_B N  N GETs of each path, interleaved on one keep-alive
                                        connection; prints the median microseconds of each
"""
import os
import socket
import statistics
import sys
import time


def connect(path, timeout=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_answer(s):
    """One HTTP answer with a Content-Length; returns (status, body) or (None, b'') at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    n = 0
    for h in lines[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def cmd_send(sock, fname, timeout="10"):
    data = open(fname, "rb").read()
    s = connect(sock, float(timeout))
    s.sendall(data)
    try:
        status, body = read_answer(s)
        print(status if status is not None else "none", body.decode(errors="replace").strip())
        rest = s.recv(65536)  # the broker must close (or at least not hang) after its answer
        while rest:
            rest = s.recv(65536)
    except socket.timeout:
        print("open after", timeout, "s")
        return 3
    return 0


def cmd_hold(sock, n, ready, release=None):
    n = int(n)
    conns = []
    deadline = time.monotonic() + 20
    while len(conns) < n and time.monotonic() < deadline:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(sock)
        except BlockingIOError:  # the accept queue is full
            s.close()
            time.sleep(0.01)
            continue
        except OSError:
            s.close()
            time.sleep(0.01)
            continue
        conns.append(s)
    with open(ready + ".tmp", "w") as f:
        f.write(str(len(conns)))
    os.rename(ready + ".tmp", ready)
    while release is None or not os.path.exists(release):
        time.sleep(0.05)
    return 0


def cmd_slow(sock, interval, limit):
    interval, limit = float(interval), float(limit)
    s = connect(sock)
    s.setblocking(False)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100000
    t0 = time.monotonic()
    for b in req:
        if time.monotonic() - t0 > limit:
            print("open after", limit, "s")
            return 3
        try:
            if s.recv(1) == b"":
                break
        except BlockingIOError:
            pass
        except OSError:
            break
        try:
            s.send(bytes([b]))
        except OSError:
            break
        time.sleep(interval)
    print("%.1f" % (time.monotonic() - t0))
    return 0


def cmd_timing(sock, path_a, path_b, n):
    n = int(n)
    s = connect(sock, 30)
    req = {p: ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p).encode() for p in (path_a, path_b)}
    times = {path_a: [], path_b: []}
    for i in range(n):
        for p in ((path_a, path_b) if i % 2 == 0 else (path_b, path_a)):
            t0 = time.perf_counter_ns()
            s.sendall(req[p])
            status, _ = read_answer(s)
            times[p].append((time.perf_counter_ns() - t0) / 1000)
            if status is None:
                s = connect(sock, 30)
    print("%.1f %.1f" % (statistics.median(times[path_a]), statistics.median(times[path_b])))
    return 0


if __name__ == "__main__":
    cmds = {"send": cmd_send, "hold": cmd_hold, "slow": cmd_slow, "timing": cmd_timing}
    sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
