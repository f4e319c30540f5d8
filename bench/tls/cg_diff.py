#!/usr/bin/env python3
"""Where the instructions of a unit of work go: two callgrind profiles of the same server,
a shorter and a longer run of the same load, subtracted function by function (their own
instructions, `callgrind_annotate --inclusive=no`) so that start-up and shutdown cancel out,
divided by the number of units (requests, connections) the longer run did more.

usage: cg_diff.py SHORT.out LONG.out UNITS [TOP]

Prints the TOP (default 25) functions by instructions per unit, with their share of the
whole difference, as a tab-separated table: instructions_per_unit, share_pct, function.
"""
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def own(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no",
                          "--tree=none", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    body = out.split("file:function", 1)[-1].split("\n", 2)[-1]  # after the header's rule
    for line in body.splitlines():
        if line.startswith("--"):
            break  # the end of the function list
        m = LINE.match(line)
        if not m:
            continue
        name = m.group(2)
        name = re.sub(r"\s+\[[^\]]*\]$", "", name)  # the object file
        # file:function -> function, with a short file for the unknown ones
        file, _, func = name.partition(":")
        if not func:
            func = file
        costs[func] = costs.get(func, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    short, long_, units = own(sys.argv[1]), own(sys.argv[2]), float(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    diff = {f: long_.get(f, 0) - short.get(f, 0) for f in set(short) | set(long_)}
    total = sum(diff.values())
    print("instructions_per_unit\tshare_pct\tfunction")
    print("%.0f\t100.0\t(all)" % (total / units))
    for f, v in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
        if v <= 0:
            break
        print("%.0f\t%.1f\t%s" % (v / units, 100.0 * v / total if total else 0, f))


if __name__ == "__main__":
    main()
