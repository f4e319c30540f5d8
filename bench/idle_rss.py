#!/usr/bin/env python3
"""Resident memory per idle keep-alive connection of a running server (loopback only).

usage: idle_rss.py PORT PID [N] [--path PATH] [--tls CAFILE] [--metrics PATH] [--wait S]

Opens N connections (default 10000) one after the other; each sends one request
(GET PATH, default /plaintext), reads the answer, and then stays open and idle. The RSS of
PID and all its descendants (nginx: master and worker) is read before and after, once it
has settled; the growth divided by N is printed, as "B per idle connection", and as a last
line "RESULT n=N before_kib=... after_kib=... bytes_per_conn=...". RLIMIT_NOFILE is raised
for the client; the server must have room for N descriptors too (bench/idle.sh sees to it).

With --tls CAFILE every connection is TLS (Python's ssl, trusting CAFILE, the certificate
naming localhost, ALPN http/1.1): its handshake complete and one request answered before
it idles (bench/tls.sh). With --metrics PATH, once the RSS after is read and while every
connection is still open, PATH (tether's /metrics) is fetched over one more connection and
the value of tether_connections_parked is added to the RESULT line as parked=N. With
--wait S the RSS after is read S seconds after the last connection opened at the earliest
(past tether's --park-after, say).
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
tls = None
if "--tls" in args:
    import ssl

    at = args.index("--tls")
    tls = ssl.create_default_context(cafile=args[at + 1])
    tls.set_alpn_protocols(["http/1.1"])
    del args[at:at + 2]
wait = 0.0
if "--wait" in args:
    at = args.index("--wait")
    wait = float(args[at + 1])
    del args[at:at + 2]
metrics = None
if "--metrics" in args:
    at = args.index("--metrics")
    metrics = args[at + 1]
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


def open_idle(req=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname="localhost")
    s.sendall(req or request)
    got = b""
    while b"\r\n\r\n" not in got:
        data = s.recv(4096)
        if not data:
            sys.exit(f"server closed a connection after {len(conns)} of {n}")
        got += data
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected response: %r" % got[:60])
    if req is not None:
        # the whole body, by its Content-Length
        head, _, body = got.partition(b"\r\n\r\n")
        length = next(int(l.split(b":")[1]) for l in head.lower().split(b"\r\n")
                      if l.startswith(b"content-length:"))
        while len(body) < length:
            data = s.recv(65536)
            if not data:
                break
            body += data
        s.close()
        return body.decode(errors="replace")
    return s


conns = []
conns.append(open_idle())  # warm: the first connection's one-time costs are not counted
before = settled_rss()
conns = [open_idle() for _ in range(n)] + conns
time.sleep(wait)
after = settled_rss()
per = (after - before) * 1024 / n
print(f"{per:.0f} B per idle connection ({n} connections, RSS {before} -> {after} KiB)")
extra = ""
if metrics is not None:
    text = open_idle(f"GET {metrics} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    parked = next((l.split()[-1] for l in text.splitlines()
                   if l.startswith("tether_connections_parked")), "?")
    print(f"parked connections (tether_connections_parked): {parked}")
    extra = f" parked={parked}"
print(f"RESULT n={n} before_kib={before} after_kib={after} bytes_per_conn={per:.0f}{extra}")
for s in conns:
    s.close()
