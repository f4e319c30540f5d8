#!/usr/bin/env python3
"""Reads the JSON report of `tether load --json` over https (bench/tls.sh) and prints one
line: "RESULT handshakes=N resumed=R failed=F seconds=T ok=K errors=E hs_p50_us=P
hs_p99_us=Q", where handshakes counts the completed ones (full and resumed), failed the
failed handshakes, ok the successful requests, errors the failed requests, and the
percentiles are those of the resumed handshakes when there are any, else of the full ones.

usage: load_json.py FILE
"""
import json
import sys

text = open(sys.argv[1]).read()
report = json.loads(text[text.index("{"):text.rindex("}") + 1])
tls = report.get("tls") or {}
full, resumed = tls.get("handshakes_full", 0), tls.get("handshakes_resumed", 0)
times = tls.get("handshake_resumed_us") if resumed else tls.get("handshake_full_us")
times = times or {}
print("RESULT handshakes=%d resumed=%d failed=%d seconds=%.3f ok=%d errors=%d hs_p50_us=%.0f "
      "hs_p99_us=%.0f" % (full + resumed, resumed, tls.get("handshakes_failed", 0),
                          report["duration_secs"], report["requests"]["ok"],
                          report["requests"]["failed"], times.get("p50", 0),
                          times.get("p99", 0)))
