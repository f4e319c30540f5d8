#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection of a running server.

usage: idle_rss.py PORT PID [N]   (N connections, default 5000; loopback only)

Each connection sends one request and reads the answer, then stays open and idle; the
server's RSS growth over N is divided by N.
"""
import resource
import socket
import sys
import time

port, pid = int(sys.argv[1]), int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
req = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


def open_idle():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    return s


first = open_idle()
first.recv(4096)
time.sleep(0.3)
before = rss_kib()
conns = [open_idle() for _ in range(n)]
for s in conns:
    s.recv(4096)
time.sleep(0.5)
after = rss_kib()
print(f"{(after - before) * 1024 / n:.0f} B per idle connection ({n} connections, RSS {before} -> {after} KiB)")
