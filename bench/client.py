#!/usr/bin/env python3
"""Fixed-work keep-alive client for instruction counts: N requests over one connection,
DEPTH requests per write (1 = sequential). Loopback only.

usage: client.py PORT N [DEPTH] [PATH]
"""
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 1
path = sys.argv[4] if len(sys.argv) > 4 else "/plaintext"
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
batch = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() * depth
buf = b""
for _ in range(n // depth):
    s.sendall(batch)
    got = 0
    while got < depth:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                got += 1
                continue
        data = s.recv(65536)
        if not data:
            sys.exit("server closed the connection")
        buf += data
s.close()
