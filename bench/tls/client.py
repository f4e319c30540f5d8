#!/usr/bin/env python3
"""TLS clients of bench/tls.sh (loopback only; Python's ssl module, that is OpenSSL).

usage: client.py handshakes PORT --cafile FILE [--resume] [--seconds S] [-n N] [--path PATH]
       client.py requests PORT N --cafile FILE [--path PATH]

handshakes: one connection after the other, each a TLS handshake (full, or with --resume
resuming the session of the connection before: a TLS 1.3 ticket or a TLS 1.2 session ID)
then one `GET PATH` with `Connection: close`, the response read to the end of its
Content-Length, and the socket closed. Runs for S seconds (default 5) or N connections,
whichever comes first. Prints a last line
"RESULT handshakes=N resumed=R failed=F seconds=T".
The response is read by its length and not to the end of the stream, so that a server
which closes without close_notify does not make OpenSSL mark the session unresumable (as
`openssl s_time -reuse`, which reads to the end, does).

requests: N sequential keep-alive requests over one TLS connection (for valgrind's counts
of the server); every response must be a 200 with a Content-Length.

PATH defaults to /plaintext; the certificate must name localhost.
"""
import os
import socket
import ssl
import sys
import time

# The response reader of bench/client.py, the plain-HTTP client of the same measurements.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from client import read_responses  # noqa: E402


def parse(argv):
    opts = {"path": "/plaintext", "resume": False, "seconds": 5.0, "n": None, "cafile": None}
    rest = []
    it = iter(argv)
    for a in it:
        if a == "--path":
            opts["path"] = next(it)
        elif a == "--cafile":
            opts["cafile"] = next(it)
        elif a == "--resume":
            opts["resume"] = True
        elif a == "--seconds":
            opts["seconds"] = float(next(it))
        elif a == "-n":
            opts["n"] = int(next(it))
        else:
            rest.append(a)
    if len(rest) < 2 or not opts["cafile"]:
        sys.exit(__doc__)
    return rest, opts


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def connect(ctx, port, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def handshakes(port, opts):
    ctx = context(opts["cafile"])
    request = ("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
               % opts["path"]).encode()
    session = None
    done = resumed = failed = 0
    start = time.monotonic()
    until = start + opts["seconds"]
    while time.monotonic() < until and (opts["n"] is None or done < opts["n"]):
        try:
            s = connect(ctx, port, session if opts["resume"] else None)
            s.sendall(request)
            read_responses(s, b"", 1)
            if s.session_reused:
                resumed += 1
            # read after the response: a TLS 1.3 ticket comes after the handshake
            session = s.session
            s.close()
            done += 1
        except (OSError, ssl.SSLError) as e:
            failed += 1
            print("failed: %s" % e, file=sys.stderr)
            if failed > 100:
                break
    seconds = time.monotonic() - start
    print("%d handshakes (%d resumed, %d failed) in %.2f s: %.0f/s"
          % (done, resumed, failed, seconds, done / seconds))
    print("RESULT handshakes=%d resumed=%d failed=%d seconds=%.3f"
          % (done, resumed, failed, seconds))


def requests(port, n, opts):
    ctx = context(opts["cafile"])
    request = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % opts["path"]).encode()
    s = connect(ctx, port)
    buf = b""
    for _ in range(n):
        s.sendall(request)
        buf = read_responses(s, buf, 1)
    s.close()


def main():
    rest, opts = parse(sys.argv[1:])
    mode, port = rest[0], int(rest[1])
    if mode == "handshakes":
        handshakes(port, opts)
    elif mode == "requests" and len(rest) == 3:
        requests(port, int(rest[2]), opts)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
