#!/usr/bin/env python3
"""Summarises scripts/bench.sh output: median per benchmark and side, and the execd/reference ratio."""
import json
import statistics
import sys
from collections import defaultdict

METRICS = {
    "latency": ("closed_us", "p50", "us", "lower"),
    "latency+quickack": ("closed_us", "p50", "us", "lower"),
    "throughput": ("mib_per_s", None, "MiB/s", "higher"),
    "fanout": ("wall_s", None, "s", "lower"),
    "fanout_peak_rss": ("server", "rss_kib_peak_sampled", "KiB", "lower"),
    "conns": ("total_s", None, "s", "lower"),
    "stdin": ("mib_per_s", None, "MiB/s", "higher"),
    "idle_rss": ("rss_kib", None, "KiB", "lower"),
    "fsread": ("mib_per_s", None, "MiB/s", "higher"),
    "fsread_peak_rss": ("server", "hwm_kib_after", "KiB", "lower"),
}


def key_of(rec):
    name = rec["bench"]
    if name == "latency" and rec.get("quickack"):
        name = "latency+quickack"
    return name


def value(rec, field, sub):
    v = rec.get(field)
    if sub is not None:
        v = v.get(sub) if isinstance(v, dict) else None
    return v


def main(path):
    values = defaultdict(list)
    for line in open(path):
        rec = json.loads(line)
        label = rec.get("label", "?")
        name = key_of(rec)
        field, sub, _, _ = METRICS[name]
        values[(name, label)].append(value(rec, field, sub))
        if name == "fanout":
            values[("fanout_peak_rss", label)].append(value(rec, "server", "rss_kib_peak_sampled"))
        if name == "fsread":
            values[("fsread_peak_rss", label)].append(value(rec, "server", "hwm_kib_after"))
    print(f"{'benchmark':<18} {'execd':>12} {'reference':>12} {'ratio':>8}  unit (better)")
    for name, (_, _, unit, better) in METRICS.items():
        e = [v for v in values.get((name, "execd"), []) if v is not None]
        r = [v for v in values.get((name, "reference"), []) if v is not None]
        if not e or not r:
            continue
        me, mr = statistics.median(e), statistics.median(r)
        print(f"{name:<18} {me:>12.1f} {mr:>12.1f} {me / mr:>8.3f}  {unit} ({better}; n={len(e)}/{len(r)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.jsonl")
