"""Medians, ratios and the issue's targets as one markdown table.

Ratios are "goesfs advantage": > 1 means goesfs is better (faster, fewer bytes,
less memory), whatever the unit, so every ratio column reads the same way.
"""
import statistics
import subprocess

PEERS = ("s3fs", "rclone")

# metric, label, unit, higher is better, what the limit column holds
ROWS = [
    ("seq_cold", "1 cold sequential read (1 MiB reads)", "MiB/s", True, "curl from nginx"),
    ("seq_cold_fetched_mib", "1 … bytes fetched from the server", "MiB", False, None),
    ("seq_warm", "2 warm, without remount", "MiB/s", True, "cache file read, page cache hot"),
    ("seq_warm_remount", "2 warm, after remount, page cache dropped", "MiB/s", True, "cache file read, page cache dropped"),
    ("rand_cold", "3 random 256 KiB reads, cold", "MiB/s", True, None),
    ("rand_warm", "3 random 256 KiB reads, warm", "MiB/s", True, None),
    ("ttfb_ms", "4 time to first byte, cold object", "ms", False, "curl time_starttransfer"),
    ("ls_cold_ms", "5 `ls -l` of the hour folder, cold", "ms", False, "raw ListObjectsV2 pages"),
    ("ls_cold_requests", "5 … requests to the server", "count", False, None),
    ("ls_warm_ms", "5 `ls -l` of the hour folder, warm", "ms", False, None),
    ("xarray_s", "6 xarray open + 100×100 slice, cold", "s", False, None),
    ("xarray_fetched_kib", "6 … bytes fetched", "KiB", False, "bytes the library reads"),
    ("anim_s", "7 animation, scans in order, total", "s", False, "goesfs without prefetch"),
    ("anim_wait_s", "7 … time spent waiting in reads", "s", False, "goesfs without prefetch"),
    ("rss_mib", "8 daemon peak RSS, 64 files at once", "MiB", False, None),
]


# The latency mode (bench/run --latency): issue 11's rows and targets.
LAT_ROWS = [
    ("lat_seq", "cold sequential read, 256 MiB, 1 MiB reads", "MB/s", True, "8 parallel ranged curls"),
    ("lat_seq_requests", "… requests", "count", False, None),
    ("lat_seq_connections", "… connections used", "count", True, None),
    ("lat_ttfb_ms", "time to first byte: open + read 1 byte, cold 64 MiB object", "ms", False, "one GET, new connection"),
    ("lat_ttfb_requests", "… requests started before the first byte", "count", False, None),
    ("lat_ttfb_serial", "… requests on the critical path (rounds in series)", "count", False, None),
    ("lat_rand", "200 random 256 KiB reads in 256 MiB, cold", "MB/s", True, "serial ranged GETs, one connection"),
    ("lat_rand_fetched_mib", "… bytes fetched (50 MiB read)", "MiB", False, None),
    ("lat_par", "16 files × 32 MiB, 8 threads, cold", "MB/s", True, "curl, 8 parallel transfers"),
    ("lat_par_rss_mib", "… daemon peak RSS", "MiB", False, None),
    ("lat_par_connections", "… connections used", "count", True, None),
    ("lat_ls_ms", "`ls -l` of 2,000 objects, cold", "ms", False, "the 2 list pages, one connection"),
    ("lat_ls_requests", "… requests", "count", False, None),
    ("lat_xarray_s", "xarray open + 100×100 slice, CONUS-sized C02, cold", "s", False, "same reads, local file"),
    ("lat_xarray_kib", "… bytes fetched", "KiB", False, "bytes the library reads"),
    ("lat_anim_s", "animation walk, C13 scans, 500×500 slice each + 50 ms step", "s", False, "goesfs --no-prefetch"),
    ("lat_anim_mib", "… bytes fetched", "MiB", False, "goesfs --no-prefetch"),
    ("lat_anim_lib_mib", "… bytes the library reads (local files)", "MiB", False, "library"),
]


def lat_target(metric, med):
    g, lim = med.get("goesfs"), med.get("limit")
    s3, rc = med.get("s3fs"), med.get("rclone")

    def v(*conds):
        if any(c is None for c in conds):
            return "n/a"
        return "PASS" if all(conds) else "MISS"

    def ok(expr):
        return None if g is None or lim is None else expr(g, lim)

    if metric == "lat_seq":
        return "≥ 0.8× curl×8, ≥ 2× s3fs", v(ok(lambda g, l: g >= 0.8 * l), None if s3 is None or g is None else g >= 2 * s3)
    if metric == "lat_ttfb_ms":
        return "≤ 2× one cold GET", v(ok(lambda g, l: g <= 2 * l))
    if metric == "lat_ttfb_serial":
        return "≤ 2", v(None if g is None else g <= 2)
    if metric == "lat_rand":
        best = max([p for p in (s3, rc) if p is not None], default=None)
        return "≥ 1.5× best peer", v(None if g is None or best is None else g >= 1.5 * best)
    if metric == "lat_par":
        return "≥ 0.9× curl×8", v(ok(lambda g, l: g >= 0.9 * l))
    if metric == "lat_par_rss_mib":
        return "≤ 128 MiB", v(None if g is None else g <= 128)
    if metric == "lat_ls_ms":
        return "≤ 1.3× list pages", v(ok(lambda g, l: g <= 1.3 * l))
    if metric == "lat_xarray_kib":
        return "≤ 2× library reads", v(ok(lambda g, l: g <= 2 * l))
    if metric == "lat_anim_s":
        return "≥ 1.3× faster than --no-prefetch", v(ok(lambda g, l: l >= 1.3 * g))
    if metric == "lat_anim_mib":
        return "≤ 1.5× --no-prefetch's bytes", v(ok(lambda g, l: g <= 1.5 * l))
    return "", ""


def medians(results):
    return {metric: {who: statistics.median(v) for who, v in per.items() if v}
            for metric, per in results.items()}


def advantage(g, other, higher_better):
    if g is None or other is None or g <= 0 or other <= 0:
        return None
    return g / other if higher_better else other / g


def target(metric, med):
    """(description, PASS/MISS/n/a) for the issue's targets, from the medians of one metric."""
    g, lim = med.get("goesfs"), med.get("limit")
    s3, rc = med.get("s3fs"), med.get("rclone")

    def verdict(*conds):
        if any(c is None for c in conds):
            return "n/a"
        return "PASS" if all(conds) else "MISS"

    def ratio_at_least(a, b, k, higher_better=True):
        r = advantage(a, b, higher_better)
        return None if r is None else r >= k

    if metric == "seq_cold":
        conds = [ratio_at_least(g, lim, 0.7)] + [ratio_at_least(g, p, 2.0) for p in (s3, rc) if p is not None]
        return "≥ 0.7× curl, ≥ 2× each peer", verdict(*conds)
    if metric in ("seq_warm", "seq_warm_remount"):
        return "≥ 0.8× the cache file", verdict(ratio_at_least(g, lim, 0.8))
    if metric == "ttfb_ms":
        return "≤ 2× curl", verdict(None if g is None or lim is None else g <= 2 * lim)
    if metric == "ls_cold_ms":
        return "≤ 1.5× raw listing", verdict(None if g is None or lim is None else g <= 1.5 * lim)
    if metric == "ls_warm_ms":
        return "≤ 50 ms", verdict(None if g is None else g <= 50)
    if metric == "xarray_fetched_kib":
        return "≤ 2× library reads", verdict(None if g is None or lim is None else g <= 2 * lim)
    if metric == "anim_wait_s":  # the total has a fixed compute floor, so the target is on the waits
        return "≥ 2× less than without prefetch", verdict(ratio_at_least(g, lim, 2.0, False))
    if metric == "rss_mib":
        return "≤ 150 MiB and < rclone", verdict(None if g is None else g <= 150,
                                                 None if rc is None else (g is not None and g < rc))
    return "", ""


def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def render(results, meta, errors):
    med = medians(results)
    # The animation's baseline is goesfs without prefetch: shown in the limit column.
    for metric in ("anim_s", "anim_wait_s", "lat_anim_s", "lat_anim_mib"):
        if "goesfs-noprefetch" in med.get(metric, {}):
            med[metric]["limit"] = med[metric].pop("goesfs-noprefetch")
    peers = [p for p in PEERS if p in meta["systems"]]
    head = ["workload", "unit", "goesfs"] + peers + ["limit"] \
        + [f"vs {p}" for p in peers] + ["vs limit", "target", "verdict"]
    lines = [f"## {meta['title']}", "",
             f"{meta['date']}; profile `{meta['profile']}` {meta['params']}; medians of {meta['reps']} "
             f"repetition(s); page cache dropped where stated: {'yes' if meta['dropped_page_cache'] else 'NO (not root)'}.",
             "Ratios are goesfs's advantage (> 1× = goesfs better: faster, fewer bytes or less memory).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows, targets = (LAT_ROWS, lat_target) if meta.get("latency") else (ROWS, target)
    if meta.get("latency"):
        rtt, rate = meta["latency"].split(",")
        lines[2:2] = [f"Through bench/delay_proxy: {rtt} ms RTT, {rate or 'no'} MB/s cap per connection, "
                      "TCP handshake and slow start emulated; mounts and curls in a network namespace, "
                      "over a veth (MTU 1500). MB = 10^6 bytes.", ""]
    for metric, label, unit, higher, limit_what in rows:
        row_med = med.get(metric, {})
        if not row_med:
            continue
        g = row_med.get("goesfs")
        cells = [label + (f" (limit: {limit_what})" if limit_what else ""), unit, fmt(g)]
        cells += [fmt(row_med.get(p)) for p in peers]
        cells.append(fmt(row_med.get("limit")))
        cells += [fmt_ratio(advantage(g, row_med.get(p), higher)) for p in peers]
        cells.append(fmt_ratio(advantage(g, row_med.get("limit"), higher)))
        cells += list(targets(metric, row_med))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Versions: " + "; ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    if meta.get("no_prefetch_flag") is None:
        lines.append("Animation baseline: n/a (goesfs has no switch to turn prefetch off; "
                     "set GOESFS_NOPREFETCH_FLAG to the flag's name).")
    if errors:
        lines.append("")
        lines.append("**Errors** (these runs are missing from the medians):")
        lines += [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def versions(goesfs_bin):
    def run(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not installed"
    def deb(pkg):
        return run(["dpkg-query", "-W", "-f=${Version}", pkg])
    return {"goesfs": run([goesfs_bin, "--version"]), "s3fs": deb("s3fs"), "rclone": deb("rclone"),
            "nginx": deb("nginx"), "fio": deb("fio"), "kernel": run(["uname", "-r"])}
