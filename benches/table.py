#!/usr/bin/env python3
"""Issue 31's table from criterion's last run of `cargo bench --bench actor`:
each workload's time per operation for patchboard and the hand-written
actors, and patchboard's ratio to the hand-written tokio actor (below 1.00
is faster). Reads target/criterion/<group>_<flavour>/<implementation>/new/estimates.json
(honours CARGO_TARGET_DIR). Usage: python3 benches/table.py"""
import json
import os
import sys

target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
root = os.path.join(target, "criterion")
# group prefix, operations per iteration (criterion reports per iteration)
rows = [
    ("seq", "sequential call, synchronous handler", 1),
    ("seq_async", "sequential call, `async fn` handler", 1),
    ("contended_64", "64 concurrent callers, synchronous handler", 1),
    ("contended_64_async", "64 concurrent callers, `async fn` handler", 1),
    ("cast", "sequential casts", 1),
    ("cast_flood_1m", "1 000 000 casts then one call (per cast)", 1_000_000),
    ("spawn_10k", "spawn + first call (per server)", 10_000),
    ("lifecycle_10k", "spawn + call + drop + end (per server)", 10_000),
]
impls = ["patchboard", "tokio_mpsc", "async_channel", "mutex"]


def median_ns(group, implementation):
    path = os.path.join(root, group, implementation, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns):
    if ns is None:
        return "—"
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"


for flavour in ["current_thread", "multi_thread_2"]:
    print(f"\n{flavour}\n")
    print("| workload | " + " | ".join(impls) + " | ratio to tokio_mpsc |")
    print("| --- |" + " ---: |" * (len(impls) + 1))
    for group, label, per in rows:
        times = {i: median_ns(f"{group}_{flavour}", i) for i in impls}
        times = {i: (t / per if t is not None else None) for i, t in times.items()}
        ours, theirs = times["patchboard"], times["tokio_mpsc"]
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "—"
        print(f"| {label} | " + " | ".join(fmt(times[i]) for i in impls) + f" | {ratio} |")
sys.exit(0)
