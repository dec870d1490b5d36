"""The benchmark's workloads. Each scenario mounts one filesystem with a fresh cache,
measures, and returns {metric: value}; bench/driver.py runs them in alternation.

Cold means a fresh mount with an empty cache (the server's files stay in the page
cache, so the server is never the bottleneck); "warm after remount" drops the
kernel's page cache first, so cached bytes come from the cache disk.
"""
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from urllib.parse import quote, urlsplit

import numpy as np

MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


class Context:
    def __init__(self, work, data_dir, manifest, endpoint, access_log, fast):
        self.work, self.data_dir, self.manifest = work, data_dir, manifest
        self.endpoint, self.log, self.fast = endpoint, AccessLog(access_log), fast
        self.bucket = manifest["bucket"]
        self.caches = 0
        self.can_drop = os.access("/proc/sys/vm/drop_caches", os.W_OK)

    def source(self, key):
        return os.path.join(self.data_dir, self.bucket, key)

    def fresh_cache(self, name):
        self.caches += 1
        return os.path.join(self.work, "cache", f"{name}-{self.caches}")

    def drop_caches(self):
        if self.can_drop:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")

    def warm_source(self, keys):
        """Drops the page cache (every step starts from it empty), then reads the server's files
        back into memory so that the server is never the bottleneck."""
        self.drop_caches()
        for k in keys:
            read_file(self.source(k))


class AccessLog:
    """nginx's access log; a window between mark() and since() is one run's traffic."""
    LINE = re.compile(r'^(\S+) (\S+) "([^"]*)" (\d+) (\d+) ')
    FULL = re.compile(r'^(\S+) (\S+) "([^"]*)" (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)')

    def __init__(self, path):
        self.path = path

    def mark(self):
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since(self, offset):
        out = dict(get_bytes=0, gets=0, heads=0, lists=0)
        with open(self.path) as f:
            f.seek(offset)
            for line in f:
                m = self.LINE.match(line)
                if not m:
                    continue
                method, _uri, args, _status, size = m.groups()
                if args and args != "-":
                    out["lists"] += 1
                elif method == "HEAD":
                    out["heads"] += 1
                elif method == "GET":
                    out["gets"] += 1
                    out["get_bytes"] += int(size)
        return out


    def timeline(self, offset):
        """[(start, end, connection, kind, bytes)] of the requests logged since offset (wall clock)."""
        out = []
        with open(self.path) as f:
            f.seek(offset)
            for line in f:
                m = self.FULL.match(line)
                if not m:
                    continue
                method, _uri, args, _status, size, rt, msec, conn = m.groups()
                kind = "LIST" if args and args != "-" else method
                out.append((float(msec) - float(rt), float(msec), int(conn), kind, int(size)))
        return sorted(out)


def read_file(path, bs=MIB):
    """Sequential read with bs-sized read(2) calls; returns (bytes, seconds)."""
    buf = bytearray(bs)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    return total, time.perf_counter() - t0


def check_same(path, source, size):
    """Cheap correctness check outside the timed part: first and last MiB match the source."""
    with open(path, "rb") as a, open(source, "rb") as b:
        for off in (0, max(0, size - MIB)):
            a.seek(off)
            b.seek(off)
            if a.read(MIB) != b.read(MIB):
                raise RuntimeError(f"{path}: bytes at {off} differ from the source")


def mbps(nbytes, seconds):
    return nbytes / MIB / seconds


# -- scenarios -----------------------------------------------------------------

def sequential(m, ctx):
    """1 and 2: cold read, warm without remount, warm after remount (page cache dropped)."""
    key = ctx.manifest["big"]
    size = os.path.getsize(ctx.source(key))
    ctx.warm_source([key])
    m.mount(ctx.fresh_cache(m.name))
    out = {}
    try:
        mark = ctx.log.mark()
        n, s = read_file(m.path(key))
        if n != size:
            raise RuntimeError(f"read {n} of {size} bytes")
        out["seq_cold"] = mbps(n, s)
        out["seq_cold_fetched_mib"] = ctx.log.since(mark)["get_bytes"] / MIB
        n, s = read_file(m.path(key))
        out["seq_warm"] = mbps(n, s)
        check_same(m.path(key), ctx.source(key), size)
        data = m.cache_data_file()
        if data:  # the warm limit: the same bytes straight from goesfs's cache file
            out["limit_seq_warm"] = mbps(*read_file(data))
    finally:
        m.unmount()
    ctx.drop_caches()
    if data:
        out["limit_seq_warm_remount"] = mbps(*read_file(data))
        ctx.drop_caches()
    m.mount(m.cache_dir)
    try:
        mark = ctx.log.mark()
        out["seq_warm_remount"] = mbps(*read_file(m.path(key)))
        out["seq_warm_remount_fetched_mib"] = ctx.log.since(mark)["get_bytes"] / MIB
    finally:
        m.unmount()
    return out


def random_reads(m, ctx):
    """3: 256 KiB reads at random offsets (fixed seed), cold then the same offsets warm."""
    key = ctx.manifest["big"]
    ctx.warm_source([key])
    m.mount(ctx.fresh_cache(m.name))
    try:
        io_size = (4 if ctx.fast else 64) * MIB
        cold = rand_read(m.path(key), io_size)
        warm = rand_read(m.path(key), io_size)
        return {"rand_cold": mbps(io_size, cold), "rand_warm": mbps(io_size, warm)}
    finally:
        m.unmount()


def rand_read(path, io_size, bs=256 << 10, seed=42):
    """Seconds for io_size bytes of bs random reads: fio if installed, else os.pread."""
    size = os.path.getsize(path)
    if shutil.which("fio"):
        r = subprocess.run(["fio", "--name=rand", f"--filename={path}", "--readonly", "--rw=randread",
                            f"--bs={bs}", f"--size={size}", f"--io_size={io_size}", "--ioengine=psync",
                            f"--randseed={seed}", "--invalidate=0", "--output-format=json"],
                           capture_output=True, text=True, check=True)
        job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]
        if job["io_bytes"] != io_size:
            raise RuntimeError(f"fio read {job['io_bytes']} of {io_size} bytes")
        return job["runtime"] / 1000.0
    rng = random.Random(seed)
    offsets = [rng.randrange(size // bs) * bs for _ in range(io_size // bs)]
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        for off in offsets:
            if len(os.pread(fd, bs, off)) != bs:
                raise RuntimeError(f"short read at {off}")
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def ttfb(m, ctx):
    """4: open + first 4 KiB of a cold object (its folder already listed)."""
    key = ctx.manifest["ttfb"]
    ctx.warm_source([key])
    m.mount(ctx.fresh_cache(m.name))
    try:
        os.listdir(os.path.dirname(m.path(key)))
        t0 = time.perf_counter()
        with open(m.path(key), "rb", buffering=0) as f:
            if len(f.read(4096)) != 4096:
                raise RuntimeError("short first read")
        return {"ttfb_ms": (time.perf_counter() - t0) * 1000}
    finally:
        m.unmount()


def listing(m, ctx):
    """5: `ls -l` of the hour folder, cold then warm."""
    folder = m.path(ctx.manifest["hour_dir"])
    want = ctx.manifest["params"]["hour"]
    m.mount(ctx.fresh_cache(m.name))
    out = {}
    try:
        for label in ("ls_cold_ms", "ls_warm_ms"):
            mark = ctx.log.mark()
            t0 = time.perf_counter()
            r = subprocess.run(["ls", "-l", folder], capture_output=True, text=True, check=True)
            out[label] = (time.perf_counter() - t0) * 1000
            entries = len(r.stdout.splitlines()) - 1  # minus "total N"
            if entries != want:
                raise RuntimeError(f"ls -l listed {entries} entries, expected {want}")
            if label == "ls_cold_ms":
                traffic = ctx.log.since(mark)
                out["ls_cold_requests"] = traffic["lists"] + traffic["heads"] + traffic["gets"]
        return out
    finally:
        m.unmount()


def xarray_slice(m, ctx):
    """6: xarray open + a 100x100 slice of the C02-like file, cold; time and bytes fetched."""
    key = ctx.manifest["c02"]
    ctx.warm_source([key])
    m.mount(ctx.fresh_cache(m.name))
    try:
        mark = ctx.log.mark()
        res = run_xslice(m.path(key))
        return {"xarray_s": res["seconds"], "xarray_fetched_kib": ctx.log.since(mark)["get_bytes"] / 1024}
    finally:
        m.unmount()


def run_xslice(path, count=False, extra=()):
    # A new interpreter each time: no HDF5 or xarray state carries over between runs.
    cmd = [sys.executable, os.path.join(HERE, "xslice.py"), path, *extra] + (["--count"] if count else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"xslice failed: {r.stderr.strip()[-1500:]}")
    return json.loads(r.stdout)


def animation(m, ctx):
    """7: one band through consecutive scans, in order, with a short step between frames."""
    keys = ctx.manifest["anim"]
    step = 0.02 if ctx.fast else 0.05
    ctx.warm_source(keys)
    m.mount(ctx.fresh_cache(m.name))
    try:
        t0 = time.perf_counter()
        waited = 0.0
        for key in keys:
            t_read = time.perf_counter()
            with open(m.path(key), "rb") as f:
                frame = np.frombuffer(f.read(), dtype=np.uint8)
            waited += time.perf_counter() - t_read
            # The "render" step: a reduction over the frame, then idle to the frame period.
            t_step = time.perf_counter()
            frame.mean()
            time.sleep(max(0.0, step - (time.perf_counter() - t_step)))
        # The steps are a fixed floor; prefetch can only shrink the time spent waiting for reads.
        return {"anim_s": time.perf_counter() - t0, "anim_wait_s": waited}
    finally:
        m.unmount()


def memory(m, ctx):
    """8: the daemon's peak RSS while 64 files are read at once."""
    keys = ctx.manifest["rss"]
    ctx.warm_source(keys)
    m.mount(ctx.fresh_cache(m.name))
    try:
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], proc_status_kib(m.pid, "VmRSS"))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        barrier = threading.Barrier(len(keys))
        errors = []

        def reader(key):
            try:
                barrier.wait()
                n, _ = read_file(m.path(key))
                if n != os.path.getsize(ctx.source(key)):
                    errors.append(f"{key}: short read {n}")
            except Exception as e:  # reported below, after all threads are joined
                errors.append(f"{key}: {e}")

        threads = [threading.Thread(target=reader, args=(k,)) for k in keys]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        peak[0] = max(peak[0], proc_status_kib(m.pid, "VmHWM"))
        return {"rss_mib": peak[0] / 1024, "rss_read_s": elapsed}
    finally:
        m.unmount()


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the machine's limits --------------------------------------------------------

def limits(ctx):
    """curl of the same bytes from nginx (cold reads, first byte) and the raw listing requests."""
    out = {}
    big, first = ctx.manifest["big"], ctx.manifest["ttfb"]
    ctx.warm_source([big, first])
    url = f"{ctx.endpoint}/{ctx.bucket}/"
    t, n, _ = curl(url + quote(big))
    out["seq_cold"] = mbps(n, t)
    _, _, start = curl(url + quote(first), "0-4095")
    out["ttfb_ms"] = start * 1000
    out["ls_cold_ms"] = raw_listing(ctx) * 1000
    return out


def curl(url, byte_range=None):
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{time_starttransfer}", url]
    if byte_range:
        cmd[1:1] = ["-r", byte_range]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    total, size, start = r.stdout.split()
    return float(total), int(size), float(start)


def raw_listing(ctx):
    """Seconds for the ListObjectsV2 pages of the hour folder over one new connection."""
    u = urlsplit(ctx.endpoint)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(u.hostname, u.port)
    token = None
    while True:
        q = f"list-type=2&delimiter=/&prefix={quote(ctx.manifest['hour_dir'], safe='')}"
        if token:
            q += f"&continuation-token={quote(token, safe='')}"
        conn.request("GET", f"/{ctx.bucket}?{q}")
        body = conn.getresponse().read().decode()
        m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", body)
        if not m:
            break
        token = m.group(1)
    conn.close()
    return time.perf_counter() - t0


SCENARIOS = [sequential, random_reads, ttfb, listing, xarray_slice, animation, memory]
