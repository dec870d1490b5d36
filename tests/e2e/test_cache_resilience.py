"""Issue 3: the block cache survives kill -9, unmounts, damaged files and a garbage index,
stays under its cap while many readers hammer it, and asks the network once per block.

All mounts show only noaa-goes19 (`--satellites 19`), which holds the cache tests' objects
(tests/fixtures/goes_fixtures.py: one 24 MiB object and 50 of 1-3 MiB). The proxy's log
says which blocks were fetched; the index is read from outside with read-only SQLite.
Timing comes from the proxy's Delay fault, and every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fixtures.goes_fixtures import MiB, big_object, stress_objects
from tests.support.polling import process_gone, wait_for
from tests.support.cache_tools import (daemon_pid, data_file, disk_bytes, kill9, live_blocks, live_cached_bytes,
                                       live_cached_by_object, open_files_under, snapshot_blocks)
from tests.support.proxy import Delay
from tests.support.random_reader import Tally, read_randomly, stress_sources
from tests.support.blocks import BLOCK, block_count, blocks_for_bytes, blocks_of_gets

ROOT = Path(__file__).resolve().parents[2]
SAT = "19"
BIG = big_object()
THREE_MIB = [o for o in stress_objects() if o.size > 2 * MiB]  # more than 2 MiB each


# --- helpers ---------------------------------------------------------------

def path_of(mount, obj) -> Path:
    return mount.path / obj.bucket / obj.key


def blocks_of(obj) -> int:
    return block_count(obj.size)


def fetched(proxy, obj) -> list[int]:
    """Cache blocks of `obj` the proxy was asked for, in order, repeats kept."""
    return blocks_of_gets(proxy.object_gets(f"/{obj.bucket}/{obj.key}"), obj.size)


def fetched_bytes(proxy, obj) -> int:
    return sum(r.bytes_sent for r in proxy.object_gets(f"/{obj.bucket}/{obj.key}"))


def stats(mount) -> str:
    return (mount.path / ".stats").read_text()


def stats_number(text: str, name: str) -> int:
    m = re.search(rf"^\s*{re.escape(name)}: (\d+)", text, re.MULTILINE)
    assert m, f"no '{name}: N' in .stats:\n{text}"
    return int(m[1])


def unmount_and_wait(mount) -> None:
    """Unmount cleanly and wait for the daemon to exit, so nothing touches the cache after."""
    pid = daemon_pid(mount.path)
    mount.unmount()
    assert not mount.is_mounted()
    wait_for(lambda: process_gone(pid), 15, f"goesfs pid {pid} still running after unmount")


def read_blocks(path: Path, count: int, errors: list[OSError]) -> None:
    """Read the first `count` MiB one block at a time; an error ends the reading."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            for i in range(count):
                if not os.pread(fd, MiB, i * MiB):
                    return
        finally:
            os.close(fd)
    except OSError as error:
        errors.append(error)


# --- 1. kill -9 mid-object -------------------------------------------------

def test_kill9_mid_object_refetches_only_missing_blocks(mount_factory, proxy):
    m = mount_factory("m", SAT)
    path = path_of(m, BIG)
    os.stat(path)
    proxy.add_fault(BIG.key, Delay(0.2), times=None)  # ~0.2 s per block: the kill lands mid-object

    errors: list[OSError] = []
    reader = threading.Thread(target=read_blocks, args=(path, blocks_of(BIG), errors), daemon=True)
    reader.start()
    wait_for(lambda: len(live_blocks(m.cache_dir, BIG.bucket, BIG.key)) * BLOCK >= 3 * MiB, 30,
             "the index never recorded 3 MiB of the object")
    kill9(daemon_pid(m.path))
    reader.join(30)
    assert not reader.is_alive(), "a read on the killed mount never returned"

    before = snapshot_blocks(m.cache_dir, BIG.bucket, BIG.key)
    assert 3 * MiB <= len(before) * BLOCK < BIG.size, f"not mid-object: {len(before)} blocks"
    m.unmount()  # the dead mount ("Transport endpoint is not connected")
    proxy.clear_faults()
    m.mount()
    proxy.reset()

    assert path.read_bytes() == BIG.data
    again = fetched(proxy, BIG)
    assert not set(again) & before, f"refetched blocks complete before the kill: {sorted(set(again) & before)}"
    missing = sorted(set(range(blocks_of(BIG))) - before)
    assert sorted(again) == missing, "each missing block must be fetched exactly once"
    print(f"\n[kill -9] {len(before)} of {blocks_of(BIG)} blocks recorded before the kill; "
          f"re-downloaded {fetched_bytes(proxy, BIG)} bytes in {len(again)} GETs "
          f"(object {BIG.size} bytes)")


# --- 6. clean unmount mid-object -------------------------------------------

def test_unmount_mid_object_then_remount_fetches_only_missing_blocks(mount_factory, proxy):
    m = mount_factory("m", SAT)
    path = path_of(m, BIG)
    os.stat(path)
    proxy.add_fault(BIG.key, Delay(0.2), times=None)  # readahead may still be in flight at unmount

    errors: list[OSError] = []
    read_blocks(path, 5, errors)  # the reader stops on its own: nothing keeps the mount busy
    assert errors == []
    unmount_and_wait(m)
    before = snapshot_blocks(m.cache_dir, BIG.bucket, BIG.key)
    assert blocks_for_bytes(0, 5 * MiB) <= before, f"blocks read before the unmount were not kept: {sorted(before)}"

    proxy.clear_faults()
    m.mount()
    proxy.reset()
    assert path.read_bytes() == BIG.data
    again = fetched(proxy, BIG)
    assert sorted(again) == sorted(set(range(blocks_of(BIG))) - before), \
        f"kept before unmount: {sorted(before)}; fetched after remount: {again}"
    print(f"\n[unmount] {len(before)} blocks kept; re-downloaded {fetched_bytes(proxy, BIG)} bytes")


# --- 2. damaged data files -------------------------------------------------

def test_damaged_data_files_are_repaired(mount_factory, proxy):
    flipped, truncated, deleted = THREE_MIB[:3]
    m = mount_factory("m", SAT)
    for o in (flipped, truncated, deleted):
        assert path_of(m, o).read_bytes() == o.data
    unmount_and_wait(m)

    with open(data_file(m.cache_dir, flipped.bucket, flipped.key), "r+b") as f:  # (a) block 1
        f.seek(MiB + 1000)
        chunk = f.read(16)
        f.seek(MiB + 1000)
        f.write(bytes(b ^ 0xFF for b in chunk))
    os.truncate(data_file(m.cache_dir, truncated.bucket, truncated.key), MiB + MiB // 2)  # (b) blocks 1, 2
    data_file(m.cache_dir, deleted.bucket, deleted.key).unlink()  # (c) blocks 0, 1, 2

    m.mount()
    proxy.reset()
    for o in (flipped, truncated, deleted):
        assert path_of(m, o).read_bytes() == o.data, f"wrong bytes served for {o.key}"
    # Only what was damaged comes again: the flipped block, the blocks past the cut, every block.
    assert fetched(proxy, flipped) == sorted(blocks_for_bytes(MiB + 1000, MiB + 1016))
    assert sorted(fetched(proxy, truncated)) == sorted(blocks_for_bytes(MiB + MiB // 2, truncated.size))
    assert sorted(fetched(proxy, deleted)) == list(range(blocks_of(deleted)))

    text = stats(m)
    assert stats_number(text, "Repairs") >= 3, text
    for o in (flipped, truncated, deleted):
        assert f"repaired {o.bucket}/{o.key}" in text, f"no repair line for {o.key}:\n{text}"


# --- 3. garbage index ------------------------------------------------------

def test_garbage_index_is_moved_aside_and_rebuilt(mount_factory, proxy):
    obj = THREE_MIB[3]
    m = mount_factory("m", SAT)
    assert path_of(m, obj).read_bytes() == obj.data
    unmount_and_wait(m)

    garbage = os.urandom(64 * 1024)
    (m.cache_dir / "index.sqlite").write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        (m.cache_dir / f"index.sqlite{suffix}").unlink(missing_ok=True)
    log_start = m.log_file.stat().st_size

    m.mount()
    assert path_of(m, obj).read_bytes() == obj.data
    moved = list(m.cache_dir.glob("index.sqlite.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == garbage, moved
    log = m.log_file.read_text(errors="replace")[log_start:]
    assert "the cache index was unreadable" in log and "moved it to" in log, log
    assert "cache index was unreadable" in stats(m)

    # The rebuilt index works: after another remount the object comes from the cache.
    m.remount()
    proxy.reset()
    assert path_of(m, obj).read_bytes() == obj.data
    assert fetched(proxy, obj) == []


# --- 4. stress with eviction -----------------------------------------------

STRESS_SECONDS = 20
THREADS, PROCESSES = 32, 3
CAP = 48 * MiB  # under half the ~99 MiB working set
SLACK = 8 * MiB  # the bound: room is reserved before writing, so only page rounding goes past the cap


def test_stress_random_reads_with_eviction(mount_factory, proxy):
    sources = stress_sources()
    assert sum(len(d) for d in sources.values()) > 2 * CAP
    m = mount_factory("m", SAT, "--cache-size", "48M")
    log_start = m.log_file.stat().st_size

    # Open objects lose their cold parts too: the cap holds whatever the readers hold open.
    worst = {"excess": -CAP, "index": 0, "disk": 0, "open": 0, "open_bytes": 0, "goesfs": 0}
    peaks = {"index": 0, "disk": 0, "samples": 0}
    stop = threading.Event()

    def sample() -> None:  # as often as we can look
        while not stop.is_set():
            # Open before or after the index snapshot counts as open: closing reaches goesfs late.
            readers = [os.getpid(), *(p.pid for p in procs)]
            held = open_files_under(m.path, readers)
            believed = json.loads((m.path / ".stats.json").read_text())["cache"]["cached_bytes"]
            per_object = live_cached_by_object(m.cache_dir)
            held |= open_files_under(m.path, readers)
            on_disk = disk_bytes(m.cache_dir)
            cached = sum(per_object.values())
            pinned = [n for (b, k), n in per_object.items() if f"{b}/{k}" in held]
            excess = max(cached, on_disk) - (CAP + SLACK)
            if excess > worst["excess"]:
                worst.update(excess=excess, index=cached, disk=on_disk, open=len(pinned),
                             open_bytes=sum(pinned), goesfs=believed)
            peaks.update(index=max(peaks["index"], cached), disk=max(peaks["disk"], on_disk),
                         samples=peaks["samples"] + 1)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.random_reader", str(m.path),
                               str(STRESS_SECONDS), str(1000 + i)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for i in range(PROCESSES)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        sampler.start()
        began = time.monotonic()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        tallies = [Tally() for _ in range(THREADS)]
        readers = [threading.Thread(target=read_randomly, daemon=True,
                                    args=(m.path, sources, began + STRESS_SECONDS, i, tallies[i]))
                   for i in range(THREADS)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(STRESS_SECONDS + 60)
        assert not any(t.is_alive() for t in readers), "a reader thread hung"
        for p in procs:
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0, f"reader process exited {p.returncode}"
            tallies.append(Tally(**json.loads(out.strip().splitlines()[-1])))
        elapsed = time.monotonic() - began
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join(10)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    total = sum(t.bytes for t in tallies)
    reads = sum(t.reads for t in tallies)
    text = stats(m)
    evictions = re.search(r"Evictions: .*", text)
    print(f"\n[stress] {reads} reads, {total} bytes in {elapsed:.1f}s = {total / elapsed / MiB:.1f} MiB/s; "
          f"peak cache {peaks['index'] / MiB:.2f} MiB (index), {peaks['disk'] / MiB:.2f} MiB (disk) "
          f"vs cap {CAP / MiB:.0f} MiB, {peaks['samples']} samples; closest to the bound: {worst}; "
          f"{evictions[0] if evictions else 'no Evictions line'}")

    errors = [e for t in tallies for e in t.errors]
    assert errors == [], errors[:10]
    assert reads > 0
    assert peaks["samples"] >= STRESS_SECONDS, "the cache size was hardly sampled (did the sampler die?)"
    log = m.log_file.read_text(errors="replace")[log_start:]
    bad = [line for line in log.splitlines()
           if re.search(r"database is locked|SQLITE_BUSY|misuse|SQLite error", line, re.IGNORECASE)]
    assert bad == [], bad[:10]
    assert worst["excess"] <= 0, (
        f"cache {worst['excess']} bytes over cap + 8 MiB: index {worst['index']}, "
        f"disk {worst['disk']}, {worst['open']} objects open holding {worst['open_bytes']}, "
        f"goesfs's own count {worst['goesfs']}, cap {CAP}")
    assert stats_number(text, "Evictions") > 0, text


def test_cap_holds_with_24_readers_holding_files_open(mount_factory):
    """24 readers, each holding two files open (about 4x the cap between them) while reading
    random ranges: peak data on disk stays within the cap + 8 MiB, every byte is right."""
    sources = stress_sources()
    names = sorted(sources)
    cap, seconds = 24 * MiB, 15
    m = mount_factory("m", SAT, "--cache-size", "24M")
    peak = {"disk": 0, "index": 0, "samples": 0}
    stop = threading.Event()
    errors: list[str] = []
    held_bytes = [0]

    def sample() -> None:
        while not stop.is_set():
            peak["disk"] = max(peak["disk"], disk_bytes(m.cache_dir))
            peak["index"] = max(peak["index"], live_cached_bytes(m.cache_dir))
            peak["samples"] += 1
            stop.wait(0.02)

    def reader(seed: int, until: float) -> None:
        rng = random.Random(seed)
        while time.monotonic() < until and len(errors) < 10:
            held = rng.sample(names, 2)
            fds = [(name, os.open(m.path / name[0] / name[1], os.O_RDONLY)) for name in held]
            held_bytes[0] = max(held_bytes[0], sum(len(sources[n]) for n in held))
            try:
                for _ in range(8):
                    name, fd = rng.choice(fds)
                    data = sources[name]
                    offset, length = rng.randrange(len(data)), rng.randint(1, 512 * 1024)
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
                    try:
                        got = os.pread(fd, length, offset)
                    except OSError as error:
                        errors.append(f"{name[1]} @{offset}+{length}: {error}")
                        continue
                    if got != data[offset:offset + length]:
                        errors.append(f"{name[1]} @{offset}+{length}: wrong bytes")
            finally:
                for _, fd in fds:
                    os.close(fd)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    until = time.monotonic() + seconds
    readers = [threading.Thread(target=reader, args=(i, until), daemon=True) for i in range(24)]
    try:
        for t in readers:
            t.start()
        for t in readers:
            t.join(seconds + 60)
    finally:
        stop.set()
        sampler.join(10)
    assert not any(t.is_alive() for t in readers), "a reader hung"
    text = stats(m)
    print(f"\n[cap] 24 readers holding 2 files open each, cap {cap // MiB} MiB: peak {peak['disk'] / MiB:.2f} MiB on disk, "
          f"{peak['index'] / MiB:.2f} MiB in the index, {peak['samples']} samples; {re.search(r'Evictions: .*', text)[0]}")
    assert errors == [], errors[:10]
    assert peak["samples"] >= seconds, "the cache was hardly sampled"
    assert peak["index"] <= cap, peak
    assert peak["disk"] <= cap + 8 * MiB, peak
    assert int(re.search(r"(\d+) cold parts of open objects", text)[1]) > 0, text
    m.unmount()
    info = subprocess.run([m.binary, "cache", "info", "--cache-dir", str(m.cache_dir)], capture_output=True, text=True, timeout=60)
    assert f"cap (last mount): {cap} bytes (24.0 MiB)" in info.stdout, info.stdout + info.stderr
    assert int(re.search(r"cached bytes: (\d+)", info.stdout)[1]) <= cap, info.stdout


def test_a_cap_below_what_downloads_need_is_refused_at_mount(goesfs_bin, tmp_path):
    (tmp_path / "mnt").mkdir()
    done = subprocess.run([str(goesfs_bin), "mount", str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "cache"),
                           "--cache-size", "10M"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--cache-size 10M is below the 24.0 MiB that downloads in flight need" in done.stderr, done.stderr
    assert not os.path.ismount(tmp_path / "mnt")


# --- 5. one GET per missing block under contention -------------------------

def contended_read(mount, proxy, obj, offsets: list[int]) -> None:
    """len(offsets) threads, released together, each pread 4 KiB at its offset on its own fd."""
    path = path_of(mount, obj)
    os.stat(path)
    proxy.add_fault(obj.key, Delay(0.5), times=None)  # the first GET is still out when all have asked
    barrier = threading.Barrier(len(offsets))
    results: dict[int, bytes | OSError] = {}

    def read(i: int, fd: int) -> None:
        barrier.wait(10)
        try:
            results[i] = os.pread(fd, 4096, offsets[i])
        except OSError as error:
            results[i] = error

    fds = [os.open(path, os.O_RDONLY) for _ in offsets]
    try:
        threads = [threading.Thread(target=read, args=(i, fd)) for i, fd in enumerate(fds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for fd in fds:
            os.close(fd)
    for i, off in enumerate(offsets):
        assert results.get(i) == obj.data[off:off + 4096], f"thread {i} @{off}: {results.get(i)!r:.80}"


def test_concurrent_readers_of_one_missing_block_share_one_get(mount_factory, proxy):
    obj = THREE_MIB[4]
    m = mount_factory("m", SAT)
    offset = MiB + 64 * 1024
    contended_read(m, proxy, obj, [offset] * 16)
    blocks = fetched(proxy, obj)
    wanted = offset // BLOCK
    assert blocks.count(wanted) == 1, f"GETs for block {wanted}: {blocks.count(wanted)} (all: {blocks})"
    assert len(blocks) == len(set(blocks)), f"a block was fetched twice: {blocks}"


def test_concurrent_readers_of_different_pages_of_one_block_share_one_get(mount_factory, proxy):
    # Same-offset readers may be merged by the kernel's page lock before goesfs sees them;
    # distinct 4 KiB pages of one block reach goesfs as separate reads.
    obj = THREE_MIB[5]
    m = mount_factory("m", SAT)
    offsets = [MiB + i * 4096 for i in range(16)]  # 16 pages of 4 KiB: four blocks
    contended_read(m, proxy, obj, offsets)
    blocks = fetched(proxy, obj)
    for wanted in blocks_for_bytes(offsets[0], offsets[-1] + 4096):
        assert blocks.count(wanted) == 1, f"GETs for block {wanted}: {blocks.count(wanted)} (all: {blocks})"
    assert len(blocks) == len(set(blocks)), f"a block was fetched twice: {blocks}"
