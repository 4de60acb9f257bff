#!/usr/bin/env python3
"""Checks Prometheus text expositions (format 0.0.4) and that counters grow.

Usage: prom-check.py SCRAPE [SCRAPE...]
Each SCRAPE is a file holding one /metrics response, oldest first. Checks
every line's grammar (HELP/TYPE comments, `name{label="value",...} number`),
that each sample's family was TYPEd before it, that counters end in _total,
and that no counter series goes down (or away) from one scrape to the next.
Prints one line per problem and exits 1 if there was any; otherwise prints
"ok: N series".
"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)$")
COMMENT = re.compile(rf"^# (HELP|TYPE) ({NAME})(?: (.*))?$")


def parse(path, problems):
    types, series = {}, {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f.read().splitlines(), 1):
            where = f"{path}:{n}"
            m = COMMENT.match(line)
            if m:
                kind, name, rest = m.groups()
                if kind == "TYPE":
                    if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        problems.append(f"{where}: bad TYPE {rest!r}")
                    if rest == "counter" and not name.endswith("_total"):
                        problems.append(f"{where}: counter {name} does not end in _total")
                    if name in types:
                        problems.append(f"{where}: TYPE of {name} twice")
                    types[name] = rest
                continue
            m = SAMPLE.match(line)
            if not m:
                problems.append(f"{where}: not a sample: {line!r}")
                continue
            name, labels, value = m.groups()
            if name not in types:
                problems.append(f"{where}: {name} has no TYPE before it")
            try:
                v = float(value)
            except ValueError:
                problems.append(f"{where}: value {value!r}")
                continue
            key = name + (labels or "")
            if key in series:
                problems.append(f"{where}: {key} twice")
            series[key] = (types.get(name), v)
    return series


def main():
    problems = []
    scrapes = [parse(p, problems) for p in sys.argv[1:]]
    for (a, b), path in zip(zip(scrapes, scrapes[1:]), sys.argv[2:]):
        for key, (t, v) in a.items():
            if t != "counter":
                continue
            if key not in b:
                problems.append(f"{path}: counter {key} went away")
            elif b[key][1] < v:
                problems.append(f"{path}: counter {key} went down: {v} -> {b[key][1]}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"ok: {len(scrapes[-1]) if scrapes else 0} series")


main()
