#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection of a running server (loopback only).

usage: idle_rss.py PORT PID [N] [--path PATH]

Opens N connections (default 10000) one after the other; each sends one request
(GET PATH, default /plaintext), reads the answer, and then stays open and idle. The RSS of
PID and all its descendants (nginx: master and worker) is read before and after, once it
has settled; the growth divided by N is printed, as "B per idle connection", and as a last
line "RESULT n=N before_kib=... after_kib=... bytes_per_conn=...". RLIMIT_NOFILE is raised
for the client; the server must have room for N descriptors too (bench/idle.sh sees to it).
"""
import os
import resource
import socket
import sys
import time

args = sys.argv[1:]
path = "/plaintext"
if "--path" in args:
    at = args.index("--path")
    path = args[at + 1]
    del args[at:at + 2]
port, pid = int(args[0]), int(args[1])
n = int(args[2]) if len(args) > 2 else 10000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 200
if soft < want:
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            sys.exit(f"RLIMIT_NOFILE hard limit {hard} is below {want}; run as root or lower N")
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def processes(root):
    """root and all its descendants"""
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_kib():
    total = 0
    for p in processes(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        except (OSError, StopIteration):
            pass
    return total


def settled_rss():
    """RSS once two readings 0.5 s apart agree within 1%"""
    last = rss_kib()
    for _ in range(10):
        time.sleep(0.5)
        now = rss_kib()
        if abs(now - last) <= last / 100:
            return now
        last = now
    return last


def open_idle():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got:
        data = s.recv(4096)
        if not data:
            sys.exit(f"server closed a connection after {len(conns)} of {n}")
        got += data
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected response: %r" % got[:60])
    return s


conns = []
conns.append(open_idle())  # warm: the first connection's one-time costs are not counted
before = settled_rss()
conns = [open_idle() for _ in range(n)] + conns
after = settled_rss()
per = (after - before) * 1024 / n
print(f"{per:.0f} B per idle connection ({n} connections, RSS {before} -> {after} KiB)")
print(f"RESULT n={n} before_kib={before} after_kib={after} bytes_per_conn={per:.0f}")
for s in conns:
    s.close()
