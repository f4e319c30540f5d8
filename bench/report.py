#!/usr/bin/env python3
"""Turns the results of bench/run-all.sh into tables (standard library only).

usage: report.py RESULTS_DIR [--doc BENCHMARKS.md]

Reads what the bench scripts wrote into RESULTS_DIR (meta.txt, peers.tsv, callgrind.tsv,
heap.tsv, alloc.tsv, idle.tsv; any of them may be missing; or files.tsv; or tls.tsv and tls-*) and writes RESULTS_DIR/results.md,
every round in detail. With --doc it also rewrites, in that file, each section between
`<!-- bench:NAME begin -->` and `<!-- bench:NAME end -->` (NAME: run, peers, floor, callgrind,
alloc, idle, targets) and leaves everything else as it is. A marker pair missing from the
file is an error: nothing is written then. The results of bench/axum.sh (the servers axum
and tether-axum only) fill one section instead, NAME axum; those of bench/files.sh (files.tsv
and none of the others) one section, NAME files; those of bench/tls.sh (tls.tsv and the other
tls-* files) one section, NAME tls.
"""
import csv
import os
import re
import statistics
import sys

SECTIONS = ["run", "peers", "floor", "callgrind", "alloc", "idle", "targets"]
LOADS = [("a", "a keep-alive"), ("b", "b pipelined x16"), ("c", "c new connection"),
         ("d", "d sequential")]
CLIENT_BOUND = 95  # load generator CPU %, at or above which req/s is the client's limit
NOISE_LIMIT = 25  # CPU % of other work during a load above which that load's round is noisy


# ---------------------------------------------------------------------------- reading

def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip()] = value.strip()
    return meta


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------- formatting

def f_int(v):
    return "{:,.0f}".format(v) if v is not None else "n/a"


def f_fix(v, digits=3):
    return "{:.{}f}".format(v, digits) if v is not None else "n/a"


def f_ratio(v):
    return "{:.2f}".format(v) if v is not None else "n/a"


def f_range(med, lo, hi):
    if med is None:
        return "n/a"
    if lo is None or hi is None or abs(hi - lo) < 0.005:
        return f_ratio(med)
    return "%s (%s–%s)" % (f_ratio(med), f_ratio(lo), f_ratio(hi))


def table(head, rows, align=None):
    align = align or ["---"] + ["--:"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


# ---------------------------------------------------------------------------- peers

class Peers:
    """peers.tsv: one row per server and round"""

    def __init__(self, rows):
        self.rows = rows
        self.rounds = sorted({r["run"] for r in rows}, key=int)
        self.servers = []
        for r in rows:
            if r["server"] not in self.servers:
                self.servers.append(r["server"])

    def all_values(self, server, key):
        """{round: value}"""
        return {r["run"]: num(r[key]) for r in self.rows
                if r["server"] == server and num(r.get(key)) is not None}

    def values(self, server, key):
        """{round: value} of the rounds in which other work took at most NOISE_LIMIT % of a
        core during this load (key's first letter); every round if none was that quiet"""
        vals = self.all_values(server, key)
        quiet = {k: v for k, v in vals.items() if not self.noisy(server, key, k)}
        return quiet or vals

    def noisy(self, server, key, rnd):
        load = key[0]
        if load not in "abcd" or key[1] != "_":
            return False
        for r in self.rows:
            if r["server"] == server and r["run"] == rnd:
                other = num(r.get(load + "_other_cpu_pct"))
                return other is not None and other > NOISE_LIMIT
        return False

    def noisy_rounds(self):
        """[(server, load, round)] left out of the figures"""
        out = []
        for s in self.servers:
            for load, _ in LOADS:
                key = load + "_cpu_s_per_100k"
                vals = self.all_values(s, key)
                quiet = [k for k in vals if not self.noisy(s, key, k)]
                if quiet:
                    out += [(s, load, k) for k in vals if k not in quiet]
        return out

    def med(self, server, key):
        return median(self.values(server, key).values())

    def ratios(self, server, other, key):
        """server's value over other's, round by round (same-round comparison)"""
        a, b = self.values(server, key), self.values(other, key)
        return [a[k] / b[k] for k in a if k in b and b[k]]

    def ratio(self, server, other, key):
        r = self.ratios(server, other, key)
        return (median(r), min(r), max(r)) if r else (None, None, None)


def rps_cell(p, s, load):
    v = p.med(s, load + "_rps")
    cell = f_int(v)
    lc = p.med(s, load + "_load_cpu_pct")
    if v is not None and lc is not None and lc >= CLIENT_BOUND:
        cell += "†"
    return cell


def peers_section(p, meta):
    out = []
    rounds = meta.get("peers rounds", "")
    out.append("Measured %s with `bench/peers.sh` (%s); each figure is the median over the "
               "rounds, each ratio the median of the ratios taken within one round. A load "
               "during which other work took more than %d%% of a core is left out (see "
               "below), unless every round of it was that noisy."
               % (meta.get("date", "?"), rounds or "%d rounds" % len(p.rounds), NOISE_LIMIT))
    out.append("")
    if not p.rows:
        return out + ["No results (bench/peers.sh did not run)."]
    ref = "tether" if "tether" in p.servers else None
    out.append("Server CPU seconds per 100,000 requests (user part in brackets) and the ratio "
               "to tether's (below 1: cheaper than tether):")
    out.append("")
    head = ["server"]
    for _, label in LOADS:
        head += [label, "÷ tether"]
    rows = []
    for s in p.servers:
        row = [s]
        for load, _ in LOADS:
            cpu, user = p.med(s, load + "_cpu_s_per_100k"), p.med(s, load + "_user_s_per_100k")
            row.append("%s (%s)" % (f_fix(cpu), f_fix(user)) if cpu is not None else "n/a")
            row.append(f_ratio(p.ratio(s, ref, load + "_cpu_s_per_100k")[0]) if ref else "n/a")
        rows.append(row)
    out += table(head, rows)
    out.append("")
    out.append("Requests per second and the ratio to tether's (above 1: more than tether); "
               "† marks a load generator at %d%% or more of its core, so that the figure is "
               "the client's limit rather than the server's:" % CLIENT_BOUND)
    out.append("")
    head = ["server"]
    for _, label in LOADS:
        head += [label, "÷ tether"]
    head += ["d p50 latency (µs)", "response bytes"]
    rows = []
    for s in p.servers:
        row = [s]
        for load, _ in LOADS:
            row.append(rps_cell(p, s, load))
            row.append(f_ratio(p.ratio(s, ref, load + "_rps")[0]) if ref else "n/a")
        row.append(f_int(p.med(s, "d_p50_us")))
        row.append(f_int(p.med(s, "resp_bytes")))
        rows.append(row)
    out += table(head, rows)
    out.append("")
    others = [num(r[l + "_other_cpu_pct"]) for r in p.rows for l, _ in LOADS]
    others = [o for o in others if o is not None]
    grouped = {}
    for r in p.rows:
        what = []
        if r["c_failed"] not in ("", "0"):
            what.append("c %s" % ("%s failed requests" % r["c_failed"]
                                  if num(r["c_failed"]) else r["c_failed"]))
        what += ["%s %s errors" % (l, r[l + "_errors"]) for l in "ab" if num(r[l + "_errors"])]
        for w in what:
            grouped.setdefault((r["server"], w), []).append(r["run"])
    failed = ["%s, %s (round %s)" % (s, w, ", ".join(runs)) for (s, w), runs in grouped.items()]
    errors = []
    left_out = {}
    for s, load, rnd in p.noisy_rounds():
        left_out.setdefault((s, rnd), []).append(load)
    out += noise_lines(others, left_out, " (the share of the two CPUs used by neither the "
                       "server nor the load generator)")
    if failed or errors:
        out.append("Failures: " + "; ".join(failed + errors) + ".")
    return out


def noisy_left_out(data, loads):
    """{(server, round): [load...]} of the rounds left out as noisy, for each (load, key) of
    `loads`: those a server has quiet rounds besides (when every round was noisy, none is
    left out)"""
    left_out = {}
    for s in data.servers:
        for load, key in loads:
            vals = data.all_values(s, key)
            quiet = [k for k in vals if not data.noisy(s, key, k)]
            if quiet:
                for k in vals:
                    if k not in quiet:
                        left_out.setdefault((s, k), []).append(load)
    return left_out


def noise_lines(others, left_out, what="", name=lambda s: s):
    """The lines on the other work's CPU share during the loads (`what` says what that is)
    and on the rounds left out as noisy ({(server, round): [load...]})"""
    out = []
    if others:
        out.append("Noise: other work took a median %.0f%% and at most %.0f%% of one core "
                   "during a load%s." % (median(others), max(others), what))
    if left_out:
        out.append("Left out as noisy: " + "; ".join(
            "%s round %s (%s)" % (name(s), rnd, ", ".join(loads))
            for (s, rnd), loads in sorted(left_out.items(), key=lambda x: (x[0][1], x[0][0])))
            + ".")
    return out


def floor_section(p, meta):
    out = ["Measured %s in the same rounds as the peers (`bench/peers.sh`); tether's figure "
           "over the floor's, median of the rounds (range in brackets):"
           % meta.get("date", "?"), ""]
    if "tether" not in p.servers or "floor" not in p.servers:
        return out + ["No results (tether or the floor did not run)."]
    rows = []
    for label, key in [("requests/s", "_rps"), ("CPU per request", "_cpu_s_per_100k"),
                       ("user CPU per request", "_user_s_per_100k")]:
        rows.append([label] + [f_range(*p.ratio("tether", "floor", l + key)) for l, _ in LOADS])
    out += table(["tether ÷ floor"] + [label for _, label in LOADS], rows)
    return out


# ---------------------------------------------------------------------------- callgrind

def depth_order(depth):
    """one connection first, by depth; then the concurrent runs, by connections"""
    return (1, int(depth[1:])) if depth.startswith("c") else (0, int(depth))


def depth_label(depth):
    if depth.startswith("c"):
        return "%s connections" % depth[1:]
    return "sequential" if depth == "1" else "pipelined x%s" % depth


def callgrind_section(rows, meta):
    if not rows:
        return ["No results (bench/callgrind.sh did not run)."]
    measured = {r["depth"]: num(r.get("measured_requests")) for r in rows}
    depths = sorted(measured, key=depth_order)

    def over(d):
        if d.startswith("c"):
            return ("%s requests over %s connections (`tether load -c %s` as the client, so "
                    "that the server finds many connections ready at each wake-up, as under "
                    "load (a))" % (f_int(measured[d]), d[1:], d[1:]))
        return "%s requests over one connection (%s)" % (f_int(measured[d]), depth_label(d))

    out = ["Measured %s with `bench/callgrind.sh`: valgrind's instruction count of the "
           "server over a number of steady-state keep-alive requests, the difference of two "
           "runs so that start-up cancels out: %s."
           % (meta.get("date", "?"), "; ".join(over(d) for d in depths)), ""]
    by = {}
    servers = []
    for r in rows:
        by[(r["server"], r["depth"])] = num(r["instructions"])
        if r["server"] not in servers:
            servers.append(r["server"])
    head = ["server"]
    for d in depths:
        head += [depth_label(d), "÷ tether"]
    body = []
    for s in servers:
        row = [s]
        for d in depths:
            v, t = by.get((s, d)), by.get(("tether", d))
            row += [f_int(v), f_ratio(v / t) if v is not None and t else "n/a"]
        body.append(row)
    return out + table(head, body)


# ---------------------------------------------------------------------------- allocations

def alloc_section(alloc, heap, meta):
    out = ["Measured %s." % meta.get("date", "?"), ""]
    if alloc:
        a = alloc[0]
        status = "passed" if a.get("test_status") == "0" else "FAILED (status %s)" % a.get(
            "test_status")
        out += ["`bench/alloc.sh` (the counting-allocator test, %s):" % status, ""]
        out += table(["tether, counting allocator", "allocations"], [
            ["per keep-alive request, `GET /plaintext`", a["plaintext_per_request"] or "n/a"],
            ["per keep-alive request, `POST /echo` (32-byte body)", a["echo_per_request"] or "n/a"],
            ["per connection (accept, one request, close)", a["per_connection"] or "n/a"],
        ])
    else:
        out.append("No results from bench/alloc.sh.")
    out.append("")
    if heap:
        out += ["`bench/heap.sh` (valgrind memcheck's heap summary of the release binaries; "
                "per request over %s sequential keep-alive requests, per connection over "
                "%s connections of one request each, accept to close):"
                % (f_int(num(heap[0].get("requests"))), f_int(num(heap[0].get("connections")))),
                ""]
        out += table(["server", "allocations per request", "bytes per request",
                      "allocations per connection", "bytes per connection"],
                     [[r["server"], r["allocs_per_request"], f_int(num(r["bytes_per_request"])),
                       r["allocs_per_connection"], f_int(num(r["bytes_per_connection"]))]
                      for r in heap])
    else:
        out.append("No results from bench/heap.sh.")
    return out


# ---------------------------------------------------------------------------- idle

def idle_section(rows, meta):
    n = rows[0]["connections"] if rows else "?"
    out = ["Measured %s with `bench/idle.sh` (%s idle keep-alive connections, each after "
           "one request):" % (meta.get("date", "?"), f_int(num(n))), ""]
    if not rows:
        return out + ["No results (bench/idle.sh did not run)."]
    t = next((num(r["bytes_per_conn"]) for r in rows if r["server"] == "tether"), None)
    body = []
    for r in rows:
        v = num(r["bytes_per_conn"])
        body.append([r["server"], f_int(v), f_ratio(v / t) if v is not None and t else "n/a",
                     "%s → %s" % (f_int(num(r["before_kib"])), f_int(num(r["after_kib"])))])
    return out + table(["server", "RSS growth per idle connection (bytes)", "÷ tether",
                        "RSS before → after (KiB)"], body)


# ---------------------------------------------------------------------------- targets

def targets_section(p, cg, alloc, idle, meta):
    out = ["Measured %s: the targets of issue 6, each as a ratio within one run. *met?* is "
           "decided on the median; the range over the rounds is in brackets."
           % meta.get("date", "?"), ""]
    rows = []

    def ratio_row(label, s, o, key, limit):
        med, lo, hi = p.ratio(s, o, key)
        met = "n/a" if med is None else ("yes" if med <= limit else "**no**")
        rows.append([label, f_range(med, lo, hi), met])

    ratio_row("keep-alive (a) CPU per request ≤ 1.05 × the floor's", "tether", "floor",
              "a_cpu_s_per_100k", 1.05)
    ratio_row("keep-alive (a) user CPU per request ≤ 0.5 × hyper's", "tether", "hyper",
              "a_user_s_per_100k", 0.5)
    ratio_row("pipelined (b) CPU per request ≤ may_minihttp's", "tether", "may_minihttp",
              "b_cpu_s_per_100k", 1.0)
    ratio_row("new connection per request (c) CPU per request ≤ nginx's", "tether", "nginx",
              "c_cpu_s_per_100k", 1.0)

    by = {(r["server"], r["depth"]): num(r["instructions"]) for r in cg}
    for depth in ["1", "16", "c100"]:
        label = depth_label(depth)
        t, h = by.get(("tether", depth)), by.get(("hyper", depth))
        if t is not None and h:
            rows.append(["callgrind instructions per request, %s, ≤ 0.5 × hyper's" % label,
                         "%s (%s / %s)" % (f_ratio(t / h), f_int(t), f_int(h)),
                         "yes" if t / h <= 0.5 else "**no**"])
        else:
            rows.append(["callgrind instructions per request, %s, ≤ 0.5 × hyper's" % label,
                         "n/a", "n/a"])

    if alloc:
        a = alloc[0]
        vals = [num(a["plaintext_per_request"]), num(a["echo_per_request"])]
        ok = all(v == 0 for v in vals) and a.get("test_status") == "0"
        rows.append(["0 allocations per steady-state request (plaintext, echo)",
                     "%s, %s" % (a["plaintext_per_request"] or "n/a",
                                 a["echo_per_request"] or "n/a"),
                     "yes" if ok else "**no**"])
    else:
        rows.append(["0 allocations per steady-state request (plaintext, echo)", "n/a", "n/a"])

    rss = {r["server"]: num(r["bytes_per_conn"]) for r in idle}
    t = rss.get("tether")
    rows.append(["RSS per idle connection ≤ 1 KiB",
                 "%s B" % f_int(t) if t is not None else "n/a",
                 "n/a" if t is None else ("yes" if t <= 1024 else "**no**")])
    others = [(s, rss[s]) for s in ("nginx", "hyper", "go-nethttp") if rss.get(s) is not None]
    if t is not None and others:
        rows.append(["RSS per idle connection below nginx's, hyper's and Go's",
                     "tether %s B; %s" % (f_int(t), ", ".join(
                         "%s %s B" % (s, f_int(v)) for s, v in others)),
                     "yes" if all(t < v for _, v in others) else "**no**"])
    else:
        rows.append(["RSS per idle connection below nginx's, hyper's and Go's", "n/a", "n/a"])
    return out + table(["target", "measured", "met?"], rows, ["---", "---", "---"])


# ---------------------------------------------------------------------------- axum

AXUM_TARGET = 0.8  # issue 13: the tether-hosted router at most 0.8 x axum on hyper's


def axum_section(p, cg, heap, meta):
    """the same router on axum::serve (axum) and on tether's adapter (tether-axum)"""
    t, h = "tether-axum", "axum"
    out = ["Measured %s with `bench/axum.sh` at commit %s (%s): the router of "
           "`bench/peers/axum` served by `axum::serve` and by `tether::tower`, each pinned "
           "to CPU 0, the load on CPU 1. CPU figures are medians over %s interleaved rounds, "
           "each ratio the median of the ratios taken within one round (range in brackets); "
           "*met?* compares the median with the target. The C floor (`bench/floor`, epoll, "
           "a fixed answer) ran in the same rounds: the least CPU per request a server can "
           "spend here, most of it the kernel's."
           % (meta.get("date", "?"), meta.get("commit", "?"), meta.get("version axum", "?"),
              len(p.rounds) or "no"), ""]
    rows = []

    def cpu_row(load, label, target):
        key = load + "_cpu_s_per_100k"
        a, b = p.med(t, key), p.med(h, key)
        med, lo, hi = p.ratio(t, h, key)
        met = "n/a" if med is None or target is None else (
            "yes" if med <= target else "**no**")
        floor = p.med("floor", key)
        fl = p.ratio("floor", h, key)[0]
        rows.append(["server CPU s per 100k requests, %s" % label, f_fix(b), f_fix(a),
                     f_range(med, lo, hi),
                     "%s (%s)" % (f_fix(floor), f_ratio(fl)) if floor is not None else "",
                     "≤ %.1f" % target if target else "", met])

    cpu_row("a", "keep-alive, 100 connections (a)", AXUM_TARGET)
    cpu_row("b", "pipelined x16 (b)", AXUM_TARGET)
    cpu_row("c", "new connection per request (c)", AXUM_TARGET)
    cpu_row("d", "one connection, sequential (d)", None)
    for load, label in (("a", "keep-alive (a)"), ("b", "pipelined (b)"),
                        ("c", "new connection (c)")):
        med, lo, hi = p.ratio(t, h, load + "_rps")
        rows.append(["requests/s, %s" % label, rps_cell(p, h, load), rps_cell(p, t, load),
                     f_range(med, lo, hi), "", "", ""])
    by = {(r["server"], r["depth"]): num(r["instructions"]) for r in cg}
    for depth in ("1", "c100"):
        a, b = by.get((t, depth)), by.get((h, depth))
        ratio = a / b if a is not None and b else None
        rows.append(["callgrind instructions per request, %s" % depth_label(depth), f_int(b),
                     f_int(a), f_ratio(ratio), "", "≤ %.1f" % AXUM_TARGET,
                     "n/a" if ratio is None else ("yes" if ratio <= AXUM_TARGET else "**no**")])
    router = by.get(("axum-direct", "1"))
    if router:
        a, b = by.get((t, "1")), by.get((h, "1"))
        rows.append(["sequential: the router alone (called without a server)", f_int(router),
                     f_int(router), "", "", "", ""])
        if a is not None and b:
            rows.append(["sequential: the server's part (instructions less the router's)",
                         f_int(b - router), f_int(a - router),
                         f_ratio((a - router) / (b - router)), "", "", ""])
    hp = {r["server"]: r for r in heap}
    if t in hp and h in hp:
        a, b = num(hp[t]["allocs_per_request"]), num(hp[h]["allocs_per_request"])
        rows.append(["heap allocations per request", f_fix(b, 1), f_fix(a, 1),
                     f_ratio(a / b if b else None), "", "fewer",
                     "yes" if a < b else "**no**"])
        for key, label in (("bytes_per_request", "heap bytes per request"),
                           ("allocs_per_connection", "heap allocations per connection"),
                           ("bytes_per_connection", "heap bytes per connection")):
            a, b = num(hp[t][key]), num(hp[h][key])
            rows.append([label, f_int(b), f_int(a), f_ratio(a / b if b else None), "", "",
                         ""])
    out += table(["measure", "axum on hyper", "axum on tether", "tether ÷ hyper",
                  "C floor (÷ hyper)", "target", "met?"], rows,
                 ["---", "--:", "--:", "--:", "--:", "--:", "---"])
    others = [num(r[l + "_other_cpu_pct"]) for r in p.rows for l, _ in LOADS]
    others = [o for o in others if o is not None]
    if others:
        out += ["", "Noise: other work took a median %.0f%% and at most %.0f%% of one core "
                "during a load." % (median(others), max(others))]
    return out


# ---------------------------------------------------------------------------- files

# load, label, CPU key (per unit), throughput key, unit of the throughput
FILE_LOADS = [("a", "(a) 1 KiB, keep-alive", "a_cpu_s_per_100k", "a_rps", "req/s"),
              ("b", "(b) 100 MiB", "b_cpu_s_per_gib", "b_mib_s", "MiB/s"),
              ("c", "(c) 304 revalidation", "c_cpu_s_per_100k", "c_rps", "req/s")]
FILE_NAMES = {"sws": "static-web-server"}


def file_name(s):
    return FILE_NAMES.get(s, s)


def files_section(f, meta):
    """files.tsv (bench/files.sh): tether serve DIR beside nginx, static-web-server and
    miniserve, the same tree, one worker each"""
    ref = "nginx"
    versions = ", ".join("%s %s" % (name, meta["version " + name].split(",")[0])
                         for name in ("nginx", "static-web-server", "miniserve")
                         if "version " + name in meta)
    out = ["Measured %s with `bench/files.sh` at commit %s (%s): the same tree (`1k.bin`, "
           "1 KiB, and `100m.bin`, 100 MiB, random bytes) served by `tether serve --workers "
           "1 DIR`, nginx, static-web-server and miniserve, each with one worker pinned to "
           "CPU 0, the load (`wrk -t1`) on CPU 1. Figures are medians over %s, each ratio "
           "the median of the ratios taken within one round (range in brackets); *met?* "
           "compares the median with the target. A load during which other work took more "
           "than %d%% of a core is left out, unless every round of it was that noisy."
           % (meta.get("date", "?"), meta.get("commit", "?"), versions or "versions unknown",
              meta.get("files rounds", "%d rounds" % len(f.rounds)).split(";")[0],
              NOISE_LIMIT), ""]
    if not f.rows:
        return out + ["No results (bench/files.sh did not run)."]
    has_ref = ref in f.servers

    def vs(s, key):
        return f_range(*f.ratio(s, ref, key)) if has_ref else "n/a"

    out.append("Server CPU seconds per 100,000 requests for (a) and (c), per GiB sent for (b) "
               "(user part in brackets), and the ratio to nginx's (below 1: cheaper than "
               "nginx):")
    out.append("")
    head = ["server"]
    for _, label, _, _, _ in FILE_LOADS:
        head += [label, "÷ nginx"]
    rows = []
    for s in f.servers:
        row = [file_name(s)]
        for load, _, key, _, _ in FILE_LOADS:
            cpu = f.med(s, key)
            user = f.med(s, key.replace("_cpu_", "_user_"))
            row.append("%s (%s)" % (f_fix(cpu), f_fix(user)) if cpu is not None else "n/a")
            row.append(vs(s, key))
        rows.append(row)
    out += table(head, rows)
    out.append("")
    out.append("Throughput and the ratio to nginx's (above 1: more than nginx); † marks a load "
               "generator at %d%% or more of its core, so that the figure is wrk's limit "
               "rather than the server's:" % CLIENT_BOUND)
    out.append("")
    head = ["server"]
    for _, label, _, _, unit in FILE_LOADS:
        head += ["%s %s" % (label, unit), "÷ nginx"]
    head += ["1 KiB response bytes", "304 response bytes", "304 validator"]
    rows = []
    for s in f.servers:
        row = [file_name(s)]
        for load, _, _, key, _ in FILE_LOADS:
            v = f.med(s, key)
            cell = f_int(v)
            lc = f.med(s, load + "_load_cpu_pct")
            if v is not None and lc is not None and lc >= CLIENT_BOUND:
                cell += "†"
            row += [cell, vs(s, key)]
        row.append(f_int(f.med(s, "resp_bytes")))
        row.append(f_int(f.med(s, "c_bytes_per_resp")))
        validators = sorted({r["c_validator"] for r in f.rows
                             if r["server"] == s and r["c_validator"]})
        row.append(", ".join(validators) or "no 304")
        rows.append(row)
    out += table(head, rows, ["---"] + ["--:"] * (len(head) - 2) + ["---"])
    out.append("")

    rows = []

    def target_row(label, other, key, limit, strict=False):
        med, lo, hi = f.ratio("tether", other, key)
        a, b = f.med("tether", key), f.med(other, key)
        measured = f_range(med, lo, hi)
        if a is not None and b is not None:
            measured += " — %s s against %s s" % (f_fix(a), f_fix(b))
        met = "n/a" if med is None else (
            "yes" if (med < limit if strict else med <= limit) else "**no**")
        rows.append([label, measured, met])

    target_row("(a) 1 KiB keep-alive: CPU per request ≤ nginx's", "nginx",
               "a_cpu_s_per_100k", 1.0)
    target_row("(c) 304 revalidation: CPU per request ≤ nginx's", "nginx",
               "c_cpu_s_per_100k", 1.0)
    target_row("(b) 100 MiB: CPU per GiB ≤ 1.1 × nginx's", "nginx", "b_cpu_s_per_gib", 1.1)
    target_row("(b) 100 MiB: CPU per GiB below static-web-server's", "sws",
               "b_cpu_s_per_gib", 1.0, strict=True)
    target_row("(b) 100 MiB: CPU per GiB below miniserve's", "miniserve", "b_cpu_s_per_gib",
               1.0, strict=True)
    out.append("Targets, tether's CPU over the other server's (seconds: tether's median "
               "against the other's):")
    out.append("")
    out += table(["target", "tether ÷ other", "met?"], rows, ["---", "---", "---"])
    out.append("")

    others = [num(r[l + "_other_cpu_pct"]) for r in f.rows for l, _, _, _, _ in FILE_LOADS]
    others = [o for o in others if o is not None]
    left_out = noisy_left_out(f, [(load, key) for load, _, key, _, _ in FILE_LOADS])
    out += noise_lines(others, left_out, name=file_name)
    failed = []
    for r in f.rows:
        what = ["%s %s errors" % (l, r[l + "_errors"]) for l in "abc" if num(r[l + "_errors"])]
        if not r["c_validator"]:
            what.append("no 304, c not measured")
        failed += ["%s round %s: %s" % (file_name(r["server"]), r["run"], w) for w in what]
    if failed:
        out.append("Failures: " + "; ".join(failed) + ".")
    return out


def files_details(f, meta):
    """every round of files.tsv, for results.md"""
    out = details_head("Static files", "files rounds", meta)
    for rnd in f.rounds:
        rows = [r for r in f.rows if r["run"] == rnd]
        out += ["## Round %s" % rnd, ""]
        out += table(["server", "1 KiB bytes", "a req/s", "a avg", "a p99", "a errors",
                      "b MiB/s", "b responses", "b errors", "c validator", "c req/s",
                      "c bytes", "c avg", "c p99", "c errors"],
                     [[file_name(r["server"]), r["resp_bytes"], r["a_rps"],
                       r["a_mean_us"] + " µs", r["a_p99_us"] + " µs", r["a_errors"],
                       r["b_mib_s"], r["b_responses"], r["b_errors"], r["c_validator"] or "-",
                       r["c_rps"] or "n/a", r["c_bytes_per_resp"] or "n/a",
                       (r["c_mean_us"] + " µs") if r["c_mean_us"] else "n/a",
                       (r["c_p99_us"] + " µs") if r["c_p99_us"] else "n/a",
                       r["c_errors"] or "n/a"] for r in rows])
        out.append("")
        head = ["server"]
        for load, _, key, _, _ in FILE_LOADS:
            head += ["%s CPU %% srv / load / other" % load,
                     "%s s/%s (user)" % (load, "GiB" if key.endswith("gib") else "100k")]
        body = []
        for r in rows:
            row = [file_name(r["server"])]
            for load, _, key, _, _ in FILE_LOADS:
                row.append(" / ".join(r[load + k] or "n/a" for k in
                                      ("_srv_cpu_pct", "_load_cpu_pct", "_other_cpu_pct")))
                user = key.replace("_cpu_", "_user_")
                row.append("%s (%s)" % (r[key], r[user]) if r[key] else "n/a")
            body.append(row)
        out += table(head, body)
        out.append("")
    return out


# ---------------------------------------------------------------------------- tls

# load, label (tls.tsv from bench/tls.sh: a keep-alive, b full handshakes, c resumed)
TLS_LOADS = [("a", "keep-alive, 100 connections"), ("b", "full handshakes"),
             ("c", "resumed handshakes")]
TLS_PEERS = ["nginx", "hyper-tls"]
SATURATED = 95  # CPU % of one core at or above which a side is taken as saturated


def saturated(t, s, load):
    """which side of a load was at its core's limit: server, client, both or neither"""
    srv, cli = t.med(s, load + "_srv_cpu_pct"), t.med(s, load + "_load_cpu_pct")
    if srv is None or cli is None:
        return "n/a"
    sides = [n for n, v in (("server", srv), ("client", cli)) if v >= SATURATED]
    return " and ".join(sides) if sides else "neither"


def negotiated(res):
    """what openssl s_client and each server agreed on (tls-negotiated.tsv), as a clause"""
    rows = read_tsv(os.path.join(res, "tls-negotiated.tsv"))
    if not rows:
        return ""
    kinds = {}
    for r in rows:
        what = "%s, %s, %s, ALPN %s" % (r["protocol"] or "?", r["cipher"] or "?",
                                         r["key_exchange"] or "?", r["alpn"] or "none")
        kinds.setdefault(what, []).append(r["server"])
    if len(kinds) == 1:
        text = "; every server negotiated %s with `openssl s_client`" % next(iter(kinds))
    else:
        text = "; negotiated with `openssl s_client`: " + "; ".join(
            "%s: %s" % (", ".join(s), w) for w, s in kinds.items())
    without = [r["server"] for r in rows if r.get("close_notify") == "no"]
    if without:
        text += (" (%s closed a connection whose request said `Connection: close` without "
                 "TLS close_notify: OpenSSL reads an unexpected EOF there and drops the "
                 "session, so that `openssl s_time -reuse` cannot resume with it)"
                 % ", ".join(without))
    return text


def tls_section(t, meta, idle, heap, alloc, sites, cg, compare, res):
    """bench/tls.sh: tether over TLS beside nginx and hyper + tokio-rustls"""
    out = ["Measured %s with `bench/tls.sh` at commit %s: `tether serve --workers 1 --tls-cert "
           "--tls-key`, nginx (%s) and hyper + tokio-rustls (`bench/peers/hyper-tls`: %s), "
           "each with one worker pinned to CPU 0 and the same certificate (%s), answering "
           "`GET /plaintext` with the 13 bytes `Hello, World!`%s. hyper-tls uses rustls with "
           "the ring provider, "
           "as tether does, so the two run the same crypto code: what separates them is the "
           "server around it. Clients on CPU 1: wrk -t1 -c100 for the keep-alive load, %s for "
           "the handshake loads. Figures are medians over %s, each ratio the median of the "
           "ratios taken within one round (range in brackets). A load during which other "
           "work took more than %d%% of a core is left out, unless every round of it was "
           "that noisy."
           % (meta.get("date", "?"), meta.get("commit", "?"),
              meta.get("version nginx", "?").split(", worker")[0],
              meta.get("version hyper-tls", "?"),
              meta.get("tls certificate", "?"), negotiated(res),
              "`%s`" % meta.get("tls client", "?")
              if meta.get("tls client", "").startswith("tether load") else
              meta.get("tls client", "?"),
              meta.get("tls rounds", "%d rounds" % len(t.rounds)).split(";")[0], NOISE_LIMIT),
           ""]
    has = lambda s: s in t.servers  # noqa: E731

    def ratio_cell(key, other):
        return f_range(*t.ratio("tether", other, key)) if has("tether") and has(other) else "n/a"

    # targets
    rows = []

    def target(label, key, other, limit, higher, fmt):
        med, lo, hi = t.ratio("tether", other, key) if has("tether") and has(other) else (
            None, None, None)
        a, b = t.med("tether", key), t.med(other, key)
        cell = f_range(med, lo, hi)
        if a is not None and b is not None:
            cell += " — %s against %s" % (fmt(a), fmt(b))
        met = "n/a" if med is None else (
            "yes" if (med >= limit if higher else med <= limit) else "**no**")
        rows.append([label, cell, met])

    per_core = lambda v: "%s/s" % f_int(v)  # noqa: E731
    s100k = lambda v: "%s s" % f_fix(v)  # noqa: E731
    target("resumed handshakes per second per core ≥ nginx's", "c_units_per_cpu_s", "nginx",
           1.0, True, per_core)
    target("full handshakes per second per core ≥ 0.8 × nginx's", "b_units_per_cpu_s",
           "nginx", 0.8, True, per_core)
    target("keep-alive CPU per request ≤ nginx's", "a_cpu_s_per_100k", "nginx", 1.0, False,
           s100k)
    target("keep-alive CPU per request ≤ hyper-tls's", "a_cpu_s_per_100k", "hyper-tls", 1.0,
           False, s100k)
    if alloc:
        a = alloc[0]
        vals = [num(a.get("plaintext_per_request")), num(a.get("echo_per_request"))]
        ok = all(v == 0 for v in vals) and a.get("test_status") == "0"
        rows.append(["0 heap allocations per steady-state TLS request (counting allocator: "
                     "plaintext, echo)", "%s, %s" % (a.get("plaintext_per_request") or "n/a",
                                                    a.get("echo_per_request") or "n/a"),
                     "yes" if ok else "**no**"])
    rss = {r["server"]: num(r["bytes_per_conn"]) for r in idle}
    if rss.get("tether") is not None:
        others = [(s, rss[s]) for s in TLS_PEERS if rss.get(s) is not None]
        rows.append(["RSS per idle TLS connection below nginx's and hyper-tls's",
                     "tether %s B; %s" % (f_int(rss["tether"]), ", ".join(
                         "%s %s B" % (s, f_int(v)) for s, v in others)),
                     "yes" if others and all(rss["tether"] < v for _, v in others)
                     else "**no**"])
    out += ["Targets, tether's figure over the peer's (per core: handshakes per second of "
            "server CPU, higher is better; CPU per request: lower is better):", ""]
    out += table(["target", "tether ÷ peer — tether against peer", "met?"], rows,
                 ["---", "---", "---"])
    out.append("")

    # handshakes
    out += ["**Handshakes**: a new connection per request, one request each (`Connection: "
            "close`), full (no resumption) and resumed (TLS 1.3 tickets). *per core* is "
            "handshakes per second of server CPU (1 / the server's CPU per handshake, "
            "accept to close, kernel included): the rate one core could sustain. *measured* "
            "is the rate the run reached; *saturated* says which side was at %d%% of its "
            "core or more (with 2 cores, usually the client: it verifies the signature, "
            "the costlier half)." % SATURATED, ""]
    head = ["server", "load", "per core", "÷ tether", "server CPU µs per handshake (user)",
            "measured per second", "server / client CPU %", "saturated", "p50 / p99 (µs)",
            "resumed"]
    body = []
    for load, label in TLS_LOADS[1:]:
        for s in t.servers:
            pc = t.med(s, load + "_units_per_cpu_s")
            us, user = t.med(s, load + "_cpu_us_per_unit"), t.med(s, load + "_user_us_per_unit")
            rt = ratio_cell(load + "_units_per_cpu_s", s) if s != "tether" else "1.00"
            if s != "tether" and rt != "n/a":
                # tether ÷ peer is given in the targets; here the peer over tether
                med, lo, hi = t.ratio(s, "tether", load + "_units_per_cpu_s")
                rt = f_range(med, lo, hi)
            hs = t.med(s, load + "_handshakes")
            rs = t.med(s, load + "_resumed")
            body.append([s, label, f_int(pc), rt,
                         "%s (%s)" % (f_fix(us, 1), f_fix(user, 1)) if us is not None else "n/a",
                         f_int(t.med(s, load + "_rate")),
                         "%s / %s" % (f_int(t.med(s, load + "_srv_cpu_pct")),
                                      f_int(t.med(s, load + "_load_cpu_pct"))),
                         saturated(t, s, load),
                         "%s / %s" % (f_int(t.med(s, load + "_hs_p50_us")),
                                      f_int(t.med(s, load + "_hs_p99_us"))),
                         "%s%%" % f_int(100.0 * rs / hs) if hs else "n/a"])
    out += table(head, body, ["---", "---"] + ["--:"] * 5 + ["---", "--:", "--:"])
    out.append("")

    # keep-alive
    out += ["**Keep-alive**: `wrk -t1 -c100` over https for the round's duration, server "
            "CPU seconds per 100,000 requests (user part in brackets):", ""]
    body = []
    for s in t.servers:
        cpu, user = t.med(s, "a_cpu_s_per_100k"), t.med(s, "a_user_s_per_100k")
        body.append([s, "%s (%s)" % (f_fix(cpu), f_fix(user)) if cpu is not None else "n/a",
                     "1.00" if s == "tether" else f_range(*t.ratio(s, "tether",
                                                                   "a_cpu_s_per_100k")),
                     f_int(t.med(s, "a_rps")),
                     "%s / %s" % (f_int(t.med(s, "a_srv_cpu_pct")),
                                  f_int(t.med(s, "a_load_cpu_pct"))),
                     saturated(t, s, "a"),
                     f_int(t.med(s, "a_p99_us")), f_int(t.med(s, "resp_bytes"))])
    out += table(["server", "CPU s per 100k requests (user)", "÷ tether", "requests/s",
                  "server / client CPU %", "saturated", "p99 (µs)", "response bytes"], body,
                 ["---"] + ["--:"] * 4 + ["---", "--:", "--:"])
    out.append("")

    # instructions
    if cg:
        by = {(r["server"], r["load"]): num(r["instructions"]) for r in cg}
        cg_servers = []
        for r in cg:
            if r["server"] not in cg_servers:
                cg_servers.append(r["server"])
        out += ["**Instructions** (valgrind --tool=callgrind, the server alone, user space: "
                "the kernel's share is not counted) per keep-alive request over one "
                "connection (%s requests) and per connection of one request with a full or "
                "a resumed handshake (%s connections, one at a time; Python's ssl as the "
                "client), the difference of two runs so that start-up cancels out:"
                % (f_int(num(next((r["measured"] for r in cg if r["load"] == "keepalive"),
                                  None))),
                   f_int(num(next((r["measured"] for r in cg if r["load"] == "full"),
                                  None)))), ""]
        body = []
        for s in cg_servers:
            row = [s]
            for load in ("keepalive", "full", "resumed"):
                v, tv = by.get((s, load)), by.get(("tether", load))
                row += [f_int(v), f_ratio(v / tv) if v is not None and tv else "n/a"]
            body.append(row)
        out += table(["server", "keep-alive request", "÷ tether", "full handshake",
                      "÷ tether", "resumed handshake", "÷ tether"], body)
        out.append("")

    # system calls
    sc = read_tsv(os.path.join(res, "tls-syscalls.tsv"))
    if sc:
        agg = {}
        order = []
        for r in sc:
            key = (r["server"], r["load"])
            if r["server"] not in order:
                order.append(r["server"])
            a = agg.setdefault(key, {"all": [0, 0], "read": [0, 0], "write": [0, 0],
                                     "epoll_wait": [0, 0], "units": num(r["units"]) or 1})
            calls, errors = num(r["calls"]) or 0, num(r["errors"]) or 0
            kind = ("read" if r["syscall"] in ("read", "recvfrom", "readv", "recvmsg") else
                    "write" if r["syscall"] in ("write", "writev", "sendto", "sendmsg") else
                    "epoll_wait" if r["syscall"] in ("epoll_wait", "epoll_pwait") else None)
            for k in ("all", kind):
                if k:
                    a[k][0] += calls
                    a[k][1] += errors

        def cell(a, k):
            if a is None:
                return "n/a"
            n = a["units"]
            c, e = a[k][0] / n, a[k][1] / n
            return "%.2f (%.2f)" % (c, e) if e >= 0.005 else "%.2f" % c

        out += ["**System calls** of the server (`strace -c -f` attached to it; failed ones, "
                "such as a read that finds nothing, `EAGAIN`, in brackets) per keep-alive "
                "request over one TLS connection and per connection with a resumed handshake "
                "and one request, one at a time (%s of each; Python's ssl as the client):"
                % f_int(num(sc[0]["units"])), ""]
        body = []
        for srv in order:
            k, r_ = agg.get((srv, "keepalive")), agg.get((srv, "resumed"))
            body.append([srv, cell(k, "all"), cell(k, "read"), cell(k, "write"),
                         cell(k, "epoll_wait"), cell(r_, "all"), cell(r_, "read")])
        out += table(["server", "keep-alive: all", "reads", "writes", "epoll_wait",
                      "resumed connection: all", "reads"], body)
        out.append("")

    # allocations
    out += ["**Heap allocations** per keep-alive request over one TLS connection:", ""]
    body = []
    if alloc:
        a = alloc[0]
        body.append(["tether, counting allocator (`crates/tether/tests/alloc.rs`, "
                     "`tls_keep_alive_allocations_per_request`; the rustls client's thread "
                     "counted apart: %s per request)" % (a.get("plaintext_client_per_request")
                                                         or "n/a"),
                     "%s (plaintext), %s (echo)" % (a.get("plaintext_per_request") or "n/a",
                                                    a.get("echo_per_request") or "n/a"), ""])
    for r in heap:
        body.append(["%s, valgrind memcheck (%s requests)" % (r["server"],
                                                              f_int(num(r["requests"]))),
                     r["allocs_per_request"], f_int(num(r["bytes_per_request"]))])
    out += table(["server, method", "allocations per request", "bytes per request"], body,
                 ["---", "--:", "--:"]) if body else ["No results."]
    out.append("")
    tsites = [r for r in sites if r.get("what") in ("GET /plaintext", "POST /echo")]
    if tsites:
        out += ["Where tether's allocations come from (the counting allocator's backtraces, "
                "`TETHER_ALLOC_TRACE`, in `tls-alloc-trace.txt` of the run): inside rustls, "
                "one per TLS record each way:", ""]
        seen = set()
        body = []
        for r in tsites:
            key = (r["rustls"], r["tether"])
            if key in seen:
                continue
            seen.add(key)
            body.append([r["bytes"], "`%s`" % r["rustls"], "`%s`" % r["source"],
                         "`%s` ← `%s`" % (r.get("entry") or "?", r["tether"])])
        out += table(["bytes", "rustls (innermost first)", "at",
                      "rustls's entry ← tether's caller"], body,
                     ["--:", "---", "---", "---"])
        out.append("")

    # idle
    if idle:
        out += ["**Memory per idle TLS connection** (`bench/idle_rss.py --tls`: %s "
                "connections, each with its handshake done and one request answered, then "
                "idle; RSS read 3 s after the last one opened; tether-nopark is tether with "
                "`--park-after 0`, never parking):" % f_int(num(idle[0]["connections"])), ""]
        tv = rss.get("tether")
        body = [[r["server"], f_int(num(r["bytes_per_conn"])),
                 f_ratio(num(r["bytes_per_conn"]) / tv) if tv and num(r["bytes_per_conn"])
                 is not None else "n/a",
                 "%s → %s" % (f_int(num(r["before_kib"])), f_int(num(r["after_kib"]))),
                 r.get("parked") or "-"] for r in idle]
        out += table(["server", "RSS growth per idle connection (bytes)", "÷ tether",
                      "RSS before → after (KiB)", "parked (tether's /metrics)"], body)
        out.append("")

    # compare
    if compare:
        out += ["**`tether load --compare`** over https against tether (`%s`): keep-alive, "
                "then a new connection per request resuming sessions, then without "
                "resumption:" % meta.get("tls compare", "tether load --compare"),
            "", "```"] + [l.rstrip() for l in compare.splitlines() if l.strip()] + ["```", ""]
        cpu = os.path.join(res, "tls-compare.cpu")
        if os.path.exists(cpu):
            f = [num(x) for x in open(cpu).read().split()]
            if len(f) == 5 and f[2]:
                out += ["During it the server took %.0f%% of its core, the client %.0f%% of "
                        "its own, other work %.0f%% of one core%s." % (
                            100 * (f[0] + f[1]) / f[2], 100 * f[3] / f[2], 100 * f[4] / f[2],
                            " (noisy: its figures are not to be quoted)"
                            if 100 * f[4] / f[2] > NOISE_LIMIT else ""), ""]

    # noise
    others = [num(r[l + "_other_cpu_pct"]) for r in t.rows for l, _ in TLS_LOADS]
    others = [o for o in others if o is not None]
    left_out = noisy_left_out(t, [(load, load + "_cpu_s_per_100k") for load, _ in TLS_LOADS])
    out += noise_lines(others, left_out)
    failed = []
    for r in t.rows:
        what = []
        if num(r.get("a_errors")):
            what.append("keep-alive %s errors" % r["a_errors"])
        for l in "bc":
            if num(r.get(l + "_failed")):
                what.append("%s %s failed handshakes" % (l, r[l + "_failed"]))
        failed += ["%s round %s: %s" % (r["server"], r["run"], w) for w in what]
    if failed:
        out.append("Failures: " + "; ".join(failed) + ".")
    return out


def tls_details(t, meta, res):
    """every round of tls.tsv, and where the instructions go, for results.md"""
    out = details_head("TLS", "tls rounds", meta)
    for rnd in t.rounds:
        rows = [r for r in t.rows if r["run"] == rnd]
        out += ["## Round %s" % rnd, ""]
        head = ["server", "a req/s", "a avg / p99 µs", "a s/100k (user)"]
        for l in "bc":
            head += ["%s handshakes (resumed)" % l, "%s per s" % l, "%s µs/hs (user)" % l,
                     "%s p50 / p99 µs" % l]
        body = []
        for r in rows:
            row = [r["server"], r["a_rps"], "%s / %s" % (r["a_mean_us"], r["a_p99_us"]),
                   "%s (%s)" % (r["a_cpu_s_per_100k"], r["a_user_s_per_100k"])]
            for l in "bc":
                row += ["%s (%s)" % (r[l + "_handshakes"], r[l + "_resumed"]), r[l + "_rate"],
                        "%s (%s)" % (r[l + "_cpu_us_per_unit"], r[l + "_user_us_per_unit"]),
                        "%s / %s" % (r[l + "_hs_p50_us"], r[l + "_hs_p99_us"])]
            body.append(row)
        out += table(head, body)
        out.append("")
        head = ["server"] + ["%s CPU %% srv / load / other" % l for l, _ in TLS_LOADS] + [
            "tether's own count (b, c)"]
        body = [[r["server"]] + [" / ".join(r[l + k] or "n/a" for k in
                                            ("_srv_cpu_pct", "_load_cpu_pct", "_other_cpu_pct"))
                                 for l, _ in TLS_LOADS] +
                ["%s; %s" % (r["b_server_counts"] or "-", r["c_server_counts"] or "-")]
                for r in rows]
        out += table(head, body)
        out.append("")
    for name in sorted(os.listdir(res)):
        m = re.match(r"tls-callgrind-(.+)-(keepalive|full|resumed)\.tsv$", name)
        if not m:
            continue
        rows = read_tsv(os.path.join(res, name))
        unit = "request" if m.group(2) == "keepalive" else "connection"
        out += ["## Instructions per %s, %s, %s" % (unit, m.group(1), m.group(2)), "",
                "Functions by instructions of their own (callgrind, two runs subtracted):", ""]
        out += table(["instructions", "share", "function"],
                     [[r["instructions_per_unit"], r["share_pct"] + "%",
                       "`%s`" % r["function"]] for r in rows[:20]], ["--:", "--:", "---"])
        out.append("")
    return out


# ---------------------------------------------------------------------------- run

def run_section(meta):
    out = ["- date: %s" % meta.get("date", "?"),
           "- machine: %s" % meta.get("machine", "?"),
           "- tether: commit %s, `%s`, `GET /plaintext`" % (meta.get("commit", "?"),
                                                          meta.get("tether", "?")),
           "- command: `%s` (%s)" % (meta.get("command", "bench/run-all.sh"),
                                     meta.get("duration", "?")),
           "- load average before the run: %s" % meta.get("load before", "?")]
    for key in sorted(k for k in meta if k.startswith("version ")):
        out.append("- %s: %s" % (key[len("version "):], meta[key]))
    return out


# ---------------------------------------------------------------------------- details

def details_head(title, rounds_key, meta):
    """the title of a round-by-round part of results.md and the run's date, rounds, machine"""
    out = ["# %s, round by round" % title, ""]
    for key in ("date", rounds_key, "machine"):
        if key in meta:
            out.append("- %s: %s" % (key, meta[key]))
    return out + [""]


def details(p, meta):
    """every round of peers.tsv, for results.md"""
    out = details_head("Peers", "peers rounds", meta)
    for rnd in p.rounds:
        rows = [r for r in p.rows if r["run"] == rnd]
        out += ["## Round %s" % rnd, ""]
        out += table(["server", "bytes", "a req/s", "a avg", "a p99", "a errors", "b req/s",
                      "b errors", "c req/s", "c failed", "d req/s", "d avg", "d p50"],
                     [[r["server"], r["resp_bytes"], r["a_rps"], r["a_mean_us"] + " µs",
                       r["a_p99_us"] + " µs", r["a_errors"], r["b_rps"], r["b_errors"],
                       r["c_rps"], r["c_failed"], r["d_rps"], r["d_mean_us"] + " µs",
                       r["d_p50_us"] + " µs"] for r in rows])
        out.append("")
        head = ["server"]
        for l, _ in LOADS:
            head += ["%s CPU %% srv / load / other" % l, "%s s/100k (user)" % l]
        body = []
        for r in rows:
            row = [r["server"]]
            for l, _ in LOADS:
                row.append(" / ".join(r[l + k] or "n/a" for k in
                                      ("_srv_cpu_pct", "_load_cpu_pct", "_other_cpu_pct")))
                row.append("%s (%s)" % (r[l + "_cpu_s_per_100k"], r[l + "_user_s_per_100k"])
                           if r[l + "_cpu_s_per_100k"] else "n/a")
            body.append(row)
        out += table(head, body)
        out.append("")
    return out


def rewrite(doc, sections):
    with open(doc) as f:
        text = f.read()
    missing = []
    for name, lines in sections.items():
        pat = re.compile(r"(<!-- bench:%s begin -->\n).*?(<!-- bench:%s end -->)"
                         % (name, name), re.S)
        if not pat.search(text):
            missing.append(name)
            continue
        body = "\n".join(lines).rstrip("\n") + "\n"
        text = pat.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)
    if missing:
        sys.exit("%s: no <!-- bench:NAME begin/end --> markers for %s; nothing written"
                 % (doc, ", ".join(missing)))
    with open(doc, "w") as f:
        f.write(text)


def main():
    args = sys.argv[1:]
    doc = None
    if "--doc" in args:
        at = args.index("--doc")
        doc = args[at + 1]
        del args[at:at + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    res = args[0]
    meta = read_meta(os.path.join(res, "meta.txt"))
    p = Peers(read_tsv(os.path.join(res, "peers.tsv")))
    cg = read_tsv(os.path.join(res, "callgrind.tsv"))
    heap = read_tsv(os.path.join(res, "heap.tsv"))
    alloc = read_tsv(os.path.join(res, "alloc.tsv"))
    idle = read_tsv(os.path.join(res, "idle.tsv"))
    files = Peers(read_tsv(os.path.join(res, "files.tsv")))
    tls_names = ["tls.tsv", "tls-idle.tsv", "tls-heap.tsv", "tls-alloc.tsv", "tls-callgrind.tsv",
                 "tls-syscalls.tsv"]
    tls = any(os.path.exists(os.path.join(res, n)) for n in tls_names)
    more = []
    if tls and not (p.rows or cg or heap or alloc or idle or files.rows):
        # bench/tls.sh alone
        t = Peers(read_tsv(os.path.join(res, "tls.tsv")))
        compare = os.path.join(res, "tls-compare.txt")
        compare = open(compare).read() if os.path.exists(compare) else ""
        sites = [dict(zip(["what", "bytes", "rustls", "source", "tether", "entry"],
                          line.split("\t")))
                 for line in open(os.path.join(res, "tls-alloc-sites.tsv")).read().splitlines()
                 ] if os.path.exists(os.path.join(res, "tls-alloc-sites.tsv")) else []
        sections = {"tls": tls_section(
            t, meta, read_tsv(os.path.join(res, "tls-idle.tsv")),
            read_tsv(os.path.join(res, "tls-heap.tsv")),
            read_tsv(os.path.join(res, "tls-alloc.tsv")), sites,
            read_tsv(os.path.join(res, "tls-callgrind.tsv")), compare, res)}
        more = tls_details(t, meta, res)
    elif files.rows and not (p.rows or cg or heap or alloc or idle):
        # bench/files.sh alone
        sections = {"files": files_section(files, meta)}
        more = files_details(files, meta)
    elif "tether-axum" in p.servers and "tether" not in p.servers:
        sections = {"axum": axum_section(p, cg, heap, meta)}
    else:
        sections = full_sections(meta, p, cg, heap, alloc, idle)
    with open(os.path.join(res, "results.md"), "w") as f:
        lines = ["# Benchmark results", ""]
        for name in SECTIONS + ["axum", "files", "tls"]:
            if name in sections:
                lines += ["## %s" % name, ""] + sections[name] + [""]
        lines += more or details(p, meta)
        f.write("\n".join(lines))
    print("wrote %s" % os.path.join(res, "results.md"))
    if doc:
        rewrite(doc, sections)
        print("rewrote the tables of %s" % doc)


def full_sections(meta, p, cg, heap, alloc, idle):
    return {
        "run": run_section(meta),
        "peers": peers_section(p, meta),
        "floor": floor_section(p, meta),
        "callgrind": callgrind_section(cg, meta),
        "alloc": alloc_section(alloc, heap, meta),
        "idle": idle_section(idle, meta),
        "targets": targets_section(p, cg, alloc, idle, meta),
    }


if __name__ == "__main__":
    main()
