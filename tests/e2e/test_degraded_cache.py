"""When the cache cannot help (a full disk, a damaged index) reads go on from the network, every
byte right; and what `stat`, `statvfs` and tree walkers see of folders.

A full disk is a small tmpfs holding the cache dir, filled by a file of the test's own; it is
unmounted in teardown whatever happens.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import MOUNTS_KEY, GoesfsMount
from tests.fixtures.goes_fixtures import MiB, RADC_HOUR, fixture_objects
from tests.support.cache_tools import live_blocks as indexed_blocks
from tests.support.polling import wait_for

OBJECTS = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)
           and o.kind == "random"]
BIG = sorted((o for o in OBJECTS if o.size >= 3 * MiB), key=lambda o: o.size)


def path_of(mount: GoesfsMount, o) -> Path:
    return mount.path / o.bucket / o.key


def read_uncached(path: Path) -> bytes:
    """Read the whole file after dropping the kernel's copy, so the read reaches goesfs."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while chunk := os.read(fd, MiB):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def stats(mount: GoesfsMount) -> str:
    return (mount.path / ".stats").read_text()


@pytest.fixture
def tmpfs(tmp_path):
    """A 12 MiB tmpfs: room for the index, not for the objects."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", str(point)], check=True)
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte with a file of our own; return it (delete it to make room)."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (256 << 10))
                f.flush()
        except OSError:
            pass
    # Page by page until even one more byte fails.
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_cache_disk_reads_from_the_network_and_resumes_caching(request, goesfs_bin, proxy, tmpfs, tmp_path):
    m = GoesfsMount(goesfs_bin, proxy.url, tmp_path / "m", "16")
    m.cache_dir = tmpfs / "cache"
    request.node.stash.setdefault(MOUNTS_KEY, []).append(m)
    try:
        m.mount("--no-prefetch", "--cache-size", "64M")
        cached = next(o for o in OBJECTS if o.size == MiB)
        first, second = BIG[-1], BIG[0]  # 5.5 MiB: more than the free space; then 3 MiB
        assert cached not in BIG
        # One file cached while there is room: it must still open and read once the disk is full
        # (opening it used to write last_access and fail).
        assert path_of(m, cached).read_bytes() == cached.data
        filler = fill(tmpfs)
        proxy.reset()
        assert read_uncached(path_of(m, cached)) == cached.data
        assert proxy.object_gets(f"/{cached.bucket}/{cached.key}") == [], "the cached file was fetched again"
        # A file bigger than the free space: every byte comes from the network, and is right.
        assert read_uncached(path_of(m, first)) == first.data
        assert read_uncached(path_of(m, first)) == first.data
        report = stats(m)
        assert "the cache disk is full" in report, report
        assert "the cache disk is full" in m.log_file.read_text()
        assert indexed_blocks(m.cache_dir, first.bucket, first.key) == set(), "nothing half-written is recorded"
        # Room again: caching resumes by itself (storing is retried after a pause).
        filler.unlink()

        def stored() -> bool:
            assert read_uncached(path_of(m, second)) == second.data
            return len(indexed_blocks(m.cache_dir, second.bucket, second.key)) > 0

        wait_for(stored, 40, "caching to resume once the disk has room")
        assert "caching resumed" in stats(m)
        assert m.is_mounted()
    finally:
        m.unmount()


def test_index_damaged_inside_is_replaced_at_first_use(mount_factory, proxy):
    m = mount_factory("m", "16", "--no-prefetch")
    obj = BIG[0]
    assert path_of(m, obj).read_bytes() == obj.data
    m.unmount()
    index = m.cache_dir / "index.sqlite"
    size = index.stat().st_size
    assert size > 3 * 4096
    with open(index, "r+b") as f:  # page 1 (header, schema) intact: the damage shows only later
        f.seek(4096)
        f.write(b"\xa5" * (size - 4096))
    m.mount("--no-prefetch")
    assert read_uncached(path_of(m, obj)) == obj.data
    log = m.log_file.read_text()
    assert "damaged" in log, log[-2000:]
    assert "damaged" in stats(m)
    assert any(p.name.startswith("index.sqlite.corrupt-") for p in m.cache_dir.iterdir())
    # And it caches again.
    assert indexed_blocks(m.cache_dir, obj.bucket, obj.key)


def test_reads_far_past_the_end_and_at_huge_offsets_are_empty(mount_factory):
    m = mount_factory("m", "16", "--no-prefetch")
    obj = BIG[0]
    fd = os.open(path_of(m, obj), os.O_RDONLY)
    try:
        # The kernel itself refuses offset + count past 2⁶³ (EINVAL); anything below reaches goesfs.
        for offset in (obj.size, obj.size + 1, 2**40, 2**62, 2**63 - 65536 - 1):
            assert os.pread(fd, 65536, offset) == b"", offset
    finally:
        os.close(fd)
    fd = os.open(m.path / ".stats", os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 2**63 - 4096 - 1) == b""
    finally:
        os.close(fd)
    assert (m.path / ".stats").read_text()


def test_folders_do_not_claim_to_be_leaves_and_df_shows_the_cache(mount_factory):
    m = mount_factory("m", "16", "--no-prefetch", "--cache-size", "256M")
    # 2 would tell find and Perl's File::Find that a folder has no subfolders.
    for folder in ("noaa-goes16", "noaa-goes16/ABI-L1b-RadC", "goes16/RadC/C13"):
        assert os.stat(m.path / folder).st_nlink == 1, folder
    found = subprocess.run(
        ["perl", "-MFile::Find", "-e",
         "find(sub { print \"$File::Find::name\\n\" if -l $_ || -f $_ }, $ARGV[0])", str(m.path / "noaa-goes16/ABI-L1b-RadC/2023/066")],
        capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    names = found.stdout.split()
    assert any(n.endswith(OBJECTS[0].key.rsplit("/", 1)[-1]) for n in names), names[:5]
    vfs = os.statvfs(m.path)
    assert vfs.f_blocks * vfs.f_frsize == 256 * MiB
    assert vfs.f_namemax == 255
    assert vfs.f_flag & os.ST_RDONLY
    df = subprocess.run(["df", "-B1", str(m.path)], capture_output=True, text=True, timeout=30)
    assert df.returncode == 0 and str(256 * MiB) in df.stdout, df.stdout


def test_more_open_files_than_descriptors_all_read(request, goesfs_bin, proxy, tmp_path):
    """With a hard limit of 1,024 descriptors (systemd's default soft limit, and here the hard one
    too, so goesfs cannot raise it), 1,100 files held open at once all read right: data-file
    descriptors are a bounded set, not one per open file."""
    from tests.fixtures.goes_fixtures import GLM_HOUR
    glm = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(GLM_HOUR)]
    assert len(glm) > 1024
    wrapper = tmp_path / "goesfs-1024"
    wrapper.write_text(f"#!/bin/sh\nexec prlimit --nofile=1024:1024 {goesfs_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    m = GoesfsMount(str(wrapper), proxy.url, tmp_path / "m", "16")
    request.node.stash.setdefault(MOUNTS_KEY, []).append(m)
    try:
        m.mount("--no-prefetch")
        limits = Path(f"/proc/{m.pid}/limits").read_text() if m.pid else ""
        assert "1024" in limits, limits
        fds = [os.open(m.path / o.bucket / o.key, os.O_RDONLY) for o in glm]
        try:
            for fd, o in zip(fds, glm):
                assert os.pread(fd, len(o.data), 0) == o.data, o.key
            for fd, o in zip(reversed(fds), reversed(glm)):   # again, through reopened descriptors
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                assert os.pread(fd, len(o.data), 0) == o.data, o.key
        finally:
            for fd in fds:
                os.close(fd)
        assert "Too many open files" not in m.log_file.read_text()
    finally:
        m.unmount()
