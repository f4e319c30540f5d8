#!/usr/bin/env python3
"""Fixed-work HTTP/1.1 client for the valgrind measurements (loopback only).

usage: client.py PORT N [DEPTH] [--path PATH]
       client.py PORT N --connections [--path PATH]

The first form sends N requests over one keep-alive connection, DEPTH requests per write
(1 = sequential, the default). The second opens N connections one after the other, each
carrying one request whose response is read before the client closes it. PATH defaults to
/plaintext. Every response must be a 200 with a Content-Length.
"""
import socket
import sys


def read_responses(s, buf, count):
    """Reads `count` responses from s, starting with the bytes in buf; returns the rest."""
    got = 0
    while got < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            if not head.startswith(b"http/1.1 200 "):
                sys.exit("unexpected response: %r" % buf[:end][:80])
            at = head.find(b"content-length:")
            if at < 0:
                sys.exit("response without Content-Length")
            length = int(head[at + 15:].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                got += 1
                continue
        data = s.recv(65536)
        if not data:
            sys.exit("server closed the connection")
        buf += data
    return buf


def main():
    args = sys.argv[1:]
    path = "/plaintext"
    if "--path" in args:
        at = args.index("--path")
        path = args[at + 1]
        del args[at:at + 2]
    per_connection = "--connections" in args
    args = [a for a in args if a != "--connections"]
    port, n = int(args[0]), int(args[1])
    depth = 1 if per_connection or len(args) < 3 else int(args[2])
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    if per_connection:
        for _ in range(n):
            s = connect()
            s.sendall(request)
            read_responses(s, b"", 1)
            s.close()
    else:
        s = connect()
        batch = request * depth
        buf = b""
        for _ in range(n // depth):
            s.sendall(batch)
            buf = read_responses(s, buf, depth)
        s.close()


if __name__ == "__main__":
    main()
