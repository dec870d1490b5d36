#!/usr/bin/env python3
"""Runs every scenario on every mount in alternation, N repetitions, then writes the report.

Started by bench/run, which owns the servers; this process owns the mounts and
unmounts them whatever happens. Exit 0 even when targets are missed; 2 when a
workload failed (a harness or filesystem error: the numbers would be incomplete).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import latency
import mounts
import report
import workloads


def goesfs_supports(binary, flag):
    r = subprocess.run([binary, "mount", "--help"], capture_output=True, text=True)
    return flag in r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--access-log", required=True)
    ap.add_argument("--goesfs", required=True)
    ap.add_argument("--systems", default="goesfs,s3fs,rclone")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fast", action="store_true", help="small io sizes and frame step (quick/smoke)")
    ap.add_argument("--out", help="write <out>.md and <out>.json")
    ap.add_argument("--title", default="goesfs benchmark")
    ap.add_argument("--latency", help="RTT_MS,RATE_MBPS: run the latency mode's workloads (through the proxy)")
    args = ap.parse_args()

    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    ctx = workloads.Context(args.work, args.data, manifest, args.endpoint, args.access_log, args.fast)
    bucket = manifest["bucket"]
    ctx.rtt = float(args.latency.split(",")[0]) / 1000 if args.latency else 0.0

    systems = []
    for name in args.systems.split(","):
        if name == "goesfs":
            systems.append(mounts.Goesfs(args.work, args.endpoint, bucket, args.goesfs))
        elif name == "s3fs":
            systems.append(mounts.S3fs(args.work, args.endpoint, bucket))
        elif name == "rclone":
            systems.append(mounts.Rclone(args.work, args.endpoint, bucket))
        else:
            sys.exit(f"unknown system {name}")
    # The animation also runs on goesfs without prefetch, when goesfs has a switch for it.
    # GOESFS_NOPREFETCH_FLAG: the mount arguments that turn prefetch off (words, split on spaces).
    no_prefetch = os.environ.get("GOESFS_NOPREFETCH_FLAG", "--no-prefetch")
    baseline = None
    if goesfs_supports(args.goesfs, no_prefetch.split()[0]):
        baseline = mounts.Goesfs(args.work, args.endpoint, bucket, args.goesfs, no_prefetch.split(),
                                 name="goesfs-noprefetch")

    results = {}   # metric -> system -> [values]
    errors = []
    all_mounts = systems + ([baseline] if baseline else [])

    def record(system, out):
        for metric, value in out.items():
            who = "limit" if metric.startswith("limit_") else system
            metric = metric[len("limit_"):] if metric.startswith("limit_") else metric
            results.setdefault(metric, {}).setdefault(who, []).append(value)

    def attempt(system_name, fn, *a):
        t0 = time.monotonic()
        try:
            out = fn(*a)
            record(system_name, out)
            print(f"  {fn.__name__:>13} {system_name:<18} {time.monotonic() - t0:6.1f}s  "
                  + " ".join(f"{k}={v:.4g}" for k, v in out.items()), file=sys.stderr, flush=True)
        except Exception as e:
            errors.append(f"{fn.__name__} on {system_name}: {e}")
            print(f"  {fn.__name__:>13} {system_name:<18} ERROR {e}", file=sys.stderr, flush=True)
            with open(os.path.join(args.work, "logs", "driver-errors.log"), "a") as log:
                traceback.print_exc(file=log)
            for m in all_mounts:  # leave nothing mounted for the next run
                try:
                    m.unmount()
                except Exception:
                    subprocess.run(["umount", "-l", m.mnt], stderr=subprocess.DEVNULL)

    scenarios, limits = workloads.SCENARIOS, workloads.limits
    if args.latency:
        scenarios, limits = latency.SCENARIOS, latency.lat_limits
    # BENCH_ONLY=lat_seq,lat_ttfb runs those scenarios only (for tuning); its report is marked partial.
    only = [n for n in os.environ.get("BENCH_ONLY", "").split(",") if n]
    if only:
        scenarios = [f for f in scenarios if f.__name__ in only]
        if args.out:
            args.out += "-partial"
    try:
        if args.latency:
            record("limit", latency.reference(ctx))
        else:
            lib = workloads.run_xslice(ctx.source(manifest["c02"]), count=True)
            record("limit", {"limit_xarray_fetched_kib": lib["bytes"] / 1024})
        for rep in range(args.reps):
            print(f"== repetition {rep + 1}/{args.reps}", file=sys.stderr, flush=True)
            attempt("limit", limits, ctx)
            for scenario in scenarios:
                # Rotate the order each repetition, so no system always goes first.
                order = systems[rep % len(systems):] + systems[:rep % len(systems)]
                if scenario in (workloads.animation, latency.lat_anim) and baseline:
                    order = order + [baseline]
                for m in order:
                    attempt(m.name, scenario, m, ctx)
    finally:
        for m in all_mounts:
            try:
                m.unmount()
            except Exception as e:
                errors.append(f"unmount {m.name}: {e}")

    meta = {"title": args.title, "reps": args.reps, "profile": manifest["profile"],
            "params": manifest["params"], "systems": [m.name for m in systems],
            "no_prefetch_flag": no_prefetch if baseline else None,
            "dropped_page_cache": ctx.can_drop, "latency": args.latency, "versions": report.versions(args.goesfs),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    table = report.render(results, meta, errors)
    print(table)
    if args.out:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(table)
        with open(args.out + ".json", "w") as f:
            json.dump({"meta": meta, "results": results, "medians": report.medians(results),
                       "errors": errors}, f, indent=1)
    sys.exit(2 if errors else 0)


if __name__ == "__main__":
    main()
