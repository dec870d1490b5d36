"""The latency mode's workloads (bench/run --latency): issue 11's list, through bench/delay_proxy.

Every step: page cache dropped, the server's files read back into memory (the server is never
the bottleneck), a fresh mount with an empty cache, the clock around the workload only, then
the bytes the workload got compared with the source file (sha256) after the clock stopped.
Request counts, connections and bytes come from nginx's log (one line per request, with its
start and end), read between a mark before the step and the end of the step.
"""
import hashlib
import http.client
import os
import random
import subprocess
import threading
import time
from urllib.parse import quote, urlsplit

import workloads
from workloads import MIB, proc_status_kib, run_xslice

MB = 1e6  # the latency table is in MB/s (10^6), the unit of the per-connection cap
RAND_COUNT, RAND_BS, PAR_THREADS = 200, 256 << 10, 8
ANIM_SLICE = 500


def sha(data):
    return hashlib.sha256(data).hexdigest()


_source_sha = {}


def source_sha(ctx, key, off=0, length=None):
    path = ctx.source(key)
    if length is None:
        if key not in _source_sha:
            with open(path, "rb") as f:
                _source_sha[key] = sha(f.read())
        return _source_sha[key]
    with open(path, "rb") as f:
        f.seek(off)
        return sha(f.read(length))


def prepare(m, ctx, keys):
    """Page cache dropped, server files back in memory, fresh mount, empty cache; the clock
    starts once the mount is quiet (no request for 0.3 s, at most 3 s): what a mount sends by
    itself (goesfs's reachability probe, a peer's bucket check) is not the step's traffic."""
    ctx.warm_source(keys)
    m.mount(ctx.fresh_cache(m.name))
    deadline, last, since = time.monotonic() + 3, ctx.log.mark(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 0.3:
        time.sleep(0.05)
        now = ctx.log.mark()
        if now != last:
            last, since = now, time.monotonic()


def traffic(ctx, mark, t_from=None, t_to=None):
    """Requests, distinct connections and object bytes of a step, from nginx's log.

    nginx's $request_time ends when the proxy has taken the last byte (it reads ahead), so only
    a request's start (its arrival at the server) is a client-side time; end times are not used.
    """
    tl = ctx.log.timeline(mark)
    if os.environ.get("BENCH_TRACE"):   # the raw log lines of this step, for looking at by hand
        import inspect
        step = inspect.stack()[1].function
        with open(ctx.log.path) as f, open(f"/tmp/bench-trace-{step}.log", "a") as out:
            f.seek(mark)
            out.write(f.read())
    if t_from is not None:
        tl = [r for r in tl if t_from <= r[0] <= t_to]
    gets = [r for r in tl if r[3] == "GET"]
    return {"requests": len(tl), "connections": len({r[2] for r in tl}),
            "get_bytes": sum(r[4] for r in gets), "gets": len(gets), "timeline": tl}


def serial_chain(tl, rtt):
    """Round trips in series before the first byte: a request that waits for an earlier answer
    reaches the server at least one RTT after it, so starts more than RTT/2 apart are a new
    round; requests sent together arrive within a few ms."""
    n, last = 0, -1e18
    for s, *_ in sorted(tl):
        if s - last > rtt / 2:
            n += 1
        last = s
    return n


def read_into(path, size, bs=MIB):
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < size:
            n = f.readinto(view[got:got + bs])
            if not n:
                break
            got += n
    if got != size:
        raise RuntimeError(f"{path}: read {got} of {size} bytes")
    return buf


# -- scenarios ---------------------------------------------------------------------------------

def lat_seq(m, ctx):
    """Cold sequential read of the big object with 1 MiB read(2)s."""
    key = ctx.manifest["big"]
    size = os.path.getsize(ctx.source(key))
    prepare(m, ctx, [key])
    try:
        mark = ctx.log.mark()
        t0 = time.perf_counter()
        buf = read_into(m.path(key), size)
        s = time.perf_counter() - t0
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    if sha(buf) != source_sha(ctx, key):
        raise RuntimeError(f"{key}: bytes differ from the source")
    return {"lat_seq": size / MB / s, "lat_seq_fetched_mib": tr["get_bytes"] / MIB,
            "lat_seq_requests": tr["requests"], "lat_seq_connections": tr["connections"]}


def lat_ttfb(m, ctx):
    """open + read 1 byte of a cold 64 MiB object, nothing looked up before (fresh mount)."""
    key = ctx.manifest["ttfb"]
    prepare(m, ctx, [key])
    try:
        mark = ctx.log.mark()
        w0 = time.time()
        t0 = time.perf_counter()
        with open(m.path(key), "rb", buffering=0) as f:
            first = f.read(1)
            s = time.perf_counter() - t0
            w1 = time.time()
        time.sleep(0.3)   # let in-flight requests finish, so they are in the log
        tr = traffic(ctx, mark, w0 - 0.002, w1)   # requests that reached the server before it
    finally:
        m.unmount()
    with open(ctx.source(key), "rb") as f:
        if first != f.read(1):
            raise RuntimeError("first byte differs from the source")
    return {"lat_ttfb_ms": s * 1000, "lat_ttfb_requests": tr["requests"],
            "lat_ttfb_serial": serial_chain(tr["timeline"], ctx.rtt)}


def rand_offsets(size, seed=42):
    rng = random.Random(seed)
    return [rng.randrange(size // RAND_BS) * RAND_BS for _ in range(RAND_COUNT)]


def lat_rand(m, ctx):
    """200 random 256 KiB pread(2)s (fixed seed, aligned) in the big object, cold."""
    key = ctx.manifest["big"]
    offsets = rand_offsets(os.path.getsize(ctx.source(key)))
    prepare(m, ctx, [key])
    try:
        mark = ctx.log.mark()
        fd = os.open(m.path(key), os.O_RDONLY)
        try:
            t0 = time.perf_counter()
            got = [os.pread(fd, RAND_BS, off) for off in offsets]
            s = time.perf_counter() - t0
        finally:
            os.close(fd)
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    with open(ctx.source(key), "rb") as f:
        for off, data in zip(offsets, got):
            f.seek(off)
            if data != f.read(RAND_BS):
                raise RuntimeError(f"random read at {off} differs from the source")
    return {"lat_rand": RAND_COUNT * RAND_BS / MB / s, "lat_rand_fetched_mib": tr["get_bytes"] / MIB,
            "lat_rand_requests": tr["requests"]}


def lat_par(m, ctx):
    """16 files x 32 MiB read by 8 threads (1 MiB reads); the daemon's peak RSS meanwhile."""
    keys = ctx.manifest["par"]
    prepare(m, ctx, keys)
    try:
        peak, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], proc_status_kib(m.pid, "VmRSS"))
                time.sleep(0.01)

        todo, lock, bufs, errors = list(keys), threading.Lock(), {}, []

        def reader():
            while True:
                with lock:
                    if not todo:
                        return
                    key = todo.pop(0)
                try:
                    bufs[key] = read_into(m.path(key), os.path.getsize(ctx.source(key)))
                except Exception as e:
                    errors.append(f"{key}: {e}")

        sampler = threading.Thread(target=sample)
        sampler.start()
        mark = ctx.log.mark()
        threads = [threading.Thread(target=reader) for _ in range(PAR_THREADS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s = time.perf_counter() - t0
        done.set()
        sampler.join()
        peak[0] = max(peak[0], proc_status_kib(m.pid, "VmHWM"))
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    for key in keys:
        if sha(bufs[key]) != source_sha(ctx, key):
            raise RuntimeError(f"{key}: bytes differ from the source")
    total = sum(len(b) for b in bufs.values())
    return {"lat_par": total / MB / s, "lat_par_rss_mib": peak[0] / 1024,
            "lat_par_requests": tr["requests"], "lat_par_connections": tr["connections"]}


def lat_ls(m, ctx):
    """`ls -l` of the 2,000-object hour folder, cold (nothing looked up before)."""
    folder = m.path(ctx.manifest["hour_dir"])
    want = ctx.manifest["params"]["hour"]
    prepare(m, ctx, [])
    try:
        mark = ctx.log.mark()
        t0 = time.perf_counter()
        r = subprocess.run(["ls", "-l", folder], capture_output=True, text=True, check=True)
        s = time.perf_counter() - t0
        time.sleep(0.2)
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    rows = r.stdout.splitlines()[1:]
    if len(rows) != want or any(line.split()[4] != "2048" for line in rows):
        raise RuntimeError(f"ls -l listed {len(rows)} entries (want {want}, each 2048 bytes)")
    return {"lat_ls_ms": s * 1000, "lat_ls_requests": tr["requests"]}


def lat_xarray(m, ctx):
    """New Python: xarray open + a 100x100 slice of the CONUS-sized C02 file; time, bytes fetched."""
    key = ctx.manifest["c02"]
    prepare(m, ctx, [key])
    try:
        mark = ctx.log.mark()
        res = run_xslice(m.path(key))
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    if res["mean"] != ctx.lat_ref["xarray_mean"]:
        raise RuntimeError(f"slice mean {res['mean']} != {ctx.lat_ref['xarray_mean']} (local file)")
    return {"lat_xarray_s": res["seconds"], "lat_xarray_kib": tr["get_bytes"] / 1024,
            "lat_xarray_requests": tr["requests"]}


def lat_anim(m, ctx):
    """12 C13 scans in order: open each, read a 500x500 slice, a 50 ms step; time and bytes."""
    keys = ctx.manifest["anim"]
    prepare(m, ctx, keys)
    try:
        mark = ctx.log.mark()
        res = run_walk([m.path(k) for k in keys])
        time.sleep(0.3)   # prefetch still in flight counts too
        tr = traffic(ctx, mark)
    finally:
        m.unmount()
    if res["means"] != ctx.lat_ref["anim_means"]:
        raise RuntimeError("animation slices differ from the local files'")
    return {"lat_anim_s": res["seconds"], "lat_anim_mib": tr["get_bytes"] / MIB}


def run_walk(paths, count=False):
    return run_xslice(paths[0], count=count, extra=[*paths[1:], "--size", str(ANIM_SLICE), "--step", "0.05"])


# -- limits ------------------------------------------------------------------------------------

def reference(ctx):
    """Once per run, on the local files: what the library reads (bytes, time, values)."""
    x = run_xslice(ctx.source(ctx.manifest["c02"]), count=True)
    a = run_walk([ctx.source(k) for k in ctx.manifest["anim"]], count=True)
    ctx.lat_ref = {"xarray_mean": x["mean"], "anim_means": a["means"]}
    return {"limit_lat_xarray_kib": x["bytes"] / 1024, "limit_lat_xarray_s": x["seconds"],
            "limit_lat_anim_lib_mib": a["bytes"] / MIB}


def lat_limits(ctx):
    """The same transfers with curl / one HTTP connection, through the same proxy."""
    out = {}
    m = ctx.manifest
    ctx.warm_source([m["big"], m["ttfb"]] + m["par"])
    url = f"{ctx.endpoint}/{ctx.bucket}/"
    # cold sequential: 8 parallel ranged curls, each a new connection
    size = os.path.getsize(ctx.source(m["big"]))
    part = -(-size // 8)
    cmds = [["curl", "-sSf", "-o", "/dev/null", "-r", f"{i * part}-{min(size, (i + 1) * part) - 1}",
             url + quote(m["big"])] for i in range(8)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c) for c in cmds]
    if any(p.wait() for p in procs):
        raise RuntimeError("curl failed")
    out["limit_lat_seq"] = size / MB / (time.perf_counter() - t0)
    # time to first byte: one GET of byte 0 on a new connection
    _, _, start = workloads.curl(url + quote(m["ttfb"]), "0-0")
    out["limit_lat_ttfb_ms"] = start * 1000
    # random: the same 200 ranges as serial GETs on one keep-alive connection
    u = urlsplit(ctx.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    path = f"/{ctx.bucket}/{quote(m['big'])}"
    t0 = time.perf_counter()
    for off in rand_offsets(size):
        conn.request("GET", path, headers={"Range": f"bytes={off}-{off + RAND_BS - 1}"})
        if len(conn.getresponse().read()) != RAND_BS:
            raise RuntimeError("short ranged GET")
    out["limit_lat_rand"] = RAND_COUNT * RAND_BS / MB / (time.perf_counter() - t0)
    conn.close()
    # 16 files: one curl, 8 parallel transfers
    cmd = ["curl", "-sSf", "-Z", "--parallel-max", str(PAR_THREADS)]
    for k in m["par"]:
        cmd += ["-o", "/dev/null", url + quote(k)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)   # -Z prints a progress meter even with -s
    if r.returncode:
        raise RuntimeError(f"curl -Z failed: {r.stderr.strip()[-500:]}")
    total = sum(os.path.getsize(ctx.source(k)) for k in m["par"])
    out["limit_lat_par"] = total / MB / (time.perf_counter() - t0)
    # ls -l: the 2 ListObjectsV2 pages on one new connection
    out["limit_lat_ls_ms"] = workloads.raw_listing(ctx) * 1000
    return out


SCENARIOS = [lat_seq, lat_ttfb, lat_rand, lat_par, lat_ls, lat_xarray, lat_anim]
