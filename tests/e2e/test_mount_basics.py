"""goesfs as a user meets it: ls, stat, cat, cmp, Python I/O, NetCDF readers.

Each test gets a fresh mount (empty cache) through the recording proxy, so the
proxy log shows exactly what goesfs fetched for it (read once the proxy is idle, see
tests/support/proxy.py). Tests that match counts exactly use `quiet_mount`
(--no-prefetch) where goesfs's own readahead or next-scan prefetch may add requests.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.support.blocks import BLOCK, block_count, blocks_for_bytes, blocks_of_gets
from tests.fixtures.goes_fixtures import (GLM_HOUR, MiB, RADC_HOUR, fixture_objects,
                                          parse_scan_start, radiance_counts)

MOUNTED = ("noaa-goes16", "noaa-goes18")  # --satellites 16,18
OBJECTS = [o for o in fixture_objects() if o.bucket in MOUNTED]
BIG = next(o for o in OBJECTS if o.size > 5 * MiB)
ONE_BYTE_PAST = next(o for o in OBJECTS if o.size == MiB + 1)
EDGE_SIZES = [o for o in OBJECTS if o.kind == "random" and o.size in (0, 1, MiB, MiB + 1, BIG.size)]
NETCDF = [o for o in OBJECTS if o.kind == "netcdf"]
GLM = [o for o in OBJECTS if o.key.startswith(GLM_HOUR)]
# Everything but most of the 1100 tiny GLM files (every 100th stands for them).
READ_ALL = [o for o in OBJECTS if not o.key.startswith(GLM_HOUR)] + GLM[::100]


def directories() -> list[tuple[str, str]]:
    """Every (bucket, prefix) that is a directory in the fixtures, "" = bucket root."""
    dirs = set()
    for o in OBJECTS:
        parts = o.key.split("/")[:-1]
        dirs.add((o.bucket, ""))
        dirs.update((o.bucket, "/".join(parts[:i]) + "/") for i in range(1, len(parts) + 1))
    return sorted(dirs)


def bucket_listing(client, bucket: str, prefix: str) -> list[str]:
    """Immediate children of `prefix` as S3 lists them (all pages)."""
    names = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        names += [p["Prefix"][len(prefix):-1] for p in page.get("CommonPrefixes", [])]
        names += [c["Key"][len(prefix):] for c in page.get("Contents", [])]
    return sorted(names)


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, env={**os.environ, "LC_ALL": "C"}, timeout=60, **kw)


def stats_field(text: str, name: str) -> int:
    m = re.search(rf"^{re.escape(name)}: (\d+)", text, re.MULTILINE)
    assert m, f"no '{name}' in .stats:\n{text}"
    return int(m[1])


def path_of(mount, obj) -> Path:
    return mount.path / obj.bucket / obj.key


# --- namespace -------------------------------------------------------------

def test_root_lists_stats_and_configured_buckets(mount):
    names = run("ls", "-1A", str(mount.path)).stdout.decode().split()
    # The mirror (noaa-goesNN) and friendly (goesNN) view of each mounted satellite, and the reports.
    friendly = {b.replace("noaa-", "") for b in MOUNTED}
    # goes-east / goes-west: aliases for whichever satellite held the slot on a date.
    assert set(names) == {".stats", ".stats.json", ".diagnostics", *MOUNTED, *friendly, "goes-east", "goes-west"}


@pytest.mark.parametrize("bucket,prefix", directories())
def test_directory_matches_bucket_listing(mount, s3, bucket, prefix):
    listed = run("ls", "-1A", str(mount.path / bucket / prefix))
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.decode().splitlines()) == bucket_listing(s3.client(), bucket, prefix)


def test_directory_over_1000_entries_is_complete(mount):
    names = os.listdir(mount.path / "noaa-goes16" / GLM_HOUR)
    assert len(names) == len(set(names)) == len(GLM) > 1000


def test_readers_listing_one_folder_at_once_share_its_requests(quiet_mount, proxy):
    """Many readers opening one hour at the same time (satpy, a parallel find) send the
    folder's listing pages once, not once per reader."""
    mount = quiet_mount
    folder = mount.path / "noaa-goes16" / GLM_HOUR
    os.stat(folder.parent)  # the levels above, listed before the clock starts
    proxy.reset()
    start = threading.Barrier(16)
    results = []

    def reader():
        start.wait()
        results.append(len(os.listdir(folder)))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [len(GLM)] * 16
    prefix = GLM_HOUR if GLM_HOUR.endswith("/") else GLM_HOUR + "/"
    pages = [r for r in proxy.records() if r.is_listing and parse_qs(r.query).get("prefix") == [prefix]]
    # 1100 keys: two pages of at most 1000, asked once.
    assert len(pages) == 2, [(r.query, r.status) for r in pages]


def test_sizes_and_mtimes(mount, s3):
    client = s3.client()
    for o in OBJECTS:
        st = os.stat(path_of(mount, o))
        assert st.st_size == len(o.data), o.key
        scan_start = parse_scan_start(o.name)
        if scan_start is None:  # non-GOES name: the object's LastModified
            scan_start = client.head_object(Bucket=o.bucket, Key=o.key)["LastModified"].timestamp()
        assert abs(st.st_mtime - scan_start) < 1e-3, (o.key, st.st_mtime, scan_start)


# --- reading ---------------------------------------------------------------

def test_every_object_reads_back_exactly(mount, proxy):
    for o in READ_ALL:
        assert path_of(mount, o).read_bytes() == o.data, o.key
    # Never a range past the end (moto, like S3, answers 416): sizes come from the listing.
    # (The log is read once background readahead and next-scan prefetch are done.)
    assert [(r.path, r.range, r.status) for r in proxy.object_gets()
            if r.status is None or r.status >= 400] == []


@pytest.mark.parametrize("obj", EDGE_SIZES, ids=lambda o: f"{o.size}B")
def test_cmp_and_cat_at_block_edges(mount, tmp_path, obj):
    expected = tmp_path / "expected"
    expected.write_bytes(obj.data)
    compared = run("cmp", str(expected), str(path_of(mount, obj)))
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert run("cat", str(path_of(mount, obj))).stdout == obj.data
    assert run("tail", "-c", "100", str(path_of(mount, obj))).stdout == obj.data[-100:]


def test_empty_object_needs_no_request(mount, proxy):
    empty = next(o for o in OBJECTS if o.kind == "random" and o.size == 0)
    assert path_of(mount, empty).read_bytes() == b""
    assert proxy.object_gets(f"/{empty.bucket}/{empty.key}") == []


def read_at(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def test_partial_read_fetches_only_the_touched_block(mount, proxy):
    path = path_of(mount, BIG)
    os.stat(path)  # lookup (and its listing) first, so only the read is measured
    proxy.reset()
    offset = 3 * MiB + MiB // 2
    assert read_at(path, offset, 4096) == BIG.data[offset:offset + 4096]

    gets = proxy.object_gets()
    assert all(r.path == f"/{BIG.bucket}/{BIG.key}" for r in gets), "fetched another object"
    blocks = blocks_of_gets(gets, BIG.size)
    # The kernel may read ahead past the 4 KiB asked for (up to max_readahead, 1 MiB), but
    # goesfs adds nothing to a read that is not sequential: no block before the offset, none
    # past the kernel's window, none twice.
    assert blocks.count(offset // BLOCK) == 1, blocks
    assert set(blocks) <= blocks_for_bytes(offset, offset + MiB) and len(blocks) == len(set(blocks)), blocks
    assert len(blocks) * BLOCK <= MiB, f"fetched {len(blocks) * BLOCK} bytes for a 4 KiB read"


def test_reread_in_same_mount_comes_from_cache(mount, proxy):
    path = path_of(mount, BIG)
    offset = 2 * MiB + 12345
    assert read_at(path, offset, 8192) == BIG.data[offset:offset + 8192]
    assert proxy.object_gets()
    # Drop the kernel's page cache for this file so the read reaches goesfs again.
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    proxy.reset()
    assert read_at(path, offset, 8192) == BIG.data[offset:offset + 8192]
    assert proxy.object_gets() == []


def test_disk_cache_survives_remount(mount, proxy):
    path = path_of(mount, BIG)
    assert path.read_bytes() == BIG.data
    assert sorted(blocks_of_gets(proxy.object_gets(), BIG.size)) == list(range(block_count(BIG.size)))
    mount.remount()
    proxy.reset()
    assert path.read_bytes() == BIG.data
    assert proxy.object_gets() == [], "remount with the same cache dir fetched again"


def test_stats_agree_with_what_the_proxy_saw(quiet_mount, proxy):
    # Three objects read in a row may start a next-scan prefetch: counted exactly, quiet.
    mount = quiet_mount
    path_of(mount, ONE_BYTE_PAST).read_bytes()
    read_at(path_of(mount, BIG), 4 * MiB + 10, 100)
    for o in NETCDF[:1]:
        path_of(mount, o).read_bytes()
    before = len(proxy.records())
    shown = run("cat", str(mount.path / ".stats"))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert len(proxy.records()) == before, "reading .stats must not touch the network"

    gets = proxy.object_gets()
    ok = [r for r in gets if 200 <= r.status < 300]
    assert stats_field(text, "Total attempts") == len(gets)
    assert stats_field(text, "Successful") == len(ok)
    assert stats_field(text, "Total bytes") == sum(r.bytes_sent for r in ok)
    assert stats_field(text, "Not found errors") == 0
    assert "S3 Download Statistics:" in text


# --- errors ----------------------------------------------------------------

def erofs_cases():
    """(name, operation on (mount, existing file)) for every kind of write."""
    hour = lambda m: m.path / "noaa-goes16" / RADC_HOUR  # noqa: E731
    return {
        "create": lambda m, f: open(hour(m) / "new.nc", "xb"),
        "open-for-write": lambda m, f: open(f, "r+b"),
        "truncate": lambda m, f: os.truncate(f, 0),
        "mkdir": lambda m, f: os.mkdir(hour(m) / "newdir"),
        "mkdir-at-root": lambda m, f: os.mkdir(m.path / "noaa-goes17"),
        "unlink": lambda m, f: os.unlink(f),
        "rename": lambda m, f: os.rename(f, str(f) + ".old"),
        "chmod": lambda m, f: os.chmod(f, 0o600),
        "utime": lambda m, f: os.utime(f, (0, 0)),
        "write-stats": lambda m, f: open(m.path / ".stats", "wb"),
    }


@pytest.mark.parametrize("case", erofs_cases())
def test_writes_fail_with_erofs(mount, case):
    target = path_of(mount, ONE_BYTE_PAST)
    with pytest.raises(OSError) as failure:
        erofs_cases()[case](mount, target)
    assert failure.value.errno == errno.EROFS, failure.value
    assert os.stat(target).st_size == ONE_BYTE_PAST.size


@pytest.mark.parametrize("argv", [
    ["touch", "{hour}/new.nc"], ["touch", "{file}"], ["sh", "-c", "echo x > {file}"],
    ["mkdir", "{hour}/d"], ["rm", "-f", "{file}"], ["mv", "{file}", "{hour}/x.nc"],
    ["chmod", "600", "{file}"], ["truncate", "-s", "0", "{file}"],
], ids=lambda a: a[0] if a[0] != "sh" else "redirect")
def test_shell_tools_report_read_only(mount, argv):
    names = {"hour": mount.path / "noaa-goes16" / RADC_HOUR, "file": path_of(mount, ONE_BYTE_PAST)}
    done = run(*[a.format(**names) for a in argv])
    assert done.returncode != 0
    assert b"Read-only file system" in done.stderr, done.stderr


@pytest.mark.parametrize("relative", [
    "nope", "noaa-goes17", "noaa-goes19", "noaa-goes16/nope",
    "noaa-goes16/ABI-L1b-RadC/2023/066/24", RADC_HOUR + "nope.nc",
    "noaa-goes16/" + RADC_HOUR + "OR_ABI-L1b-RadC-M6C13_G16_s20230661402000_e0_c0.nc",
])
def test_missing_names_are_enoent(mount, relative):
    # (A well-formed folder such as 2023/067 is a folder without a LIST, as the catalog knows its
    # shape; an empty one if the bucket has no such day: see test_lookups.py.)
    with pytest.raises(FileNotFoundError):
        os.stat(mount.path / relative)
    listed = run("ls", str(mount.path / relative))
    assert listed.returncode == 2 and b"No such file or directory" in listed.stderr


# --- scientific readers ----------------------------------------------------

@pytest.mark.parametrize("obj", NETCDF, ids=lambda o: o.name[:40])
def test_netcdf_opens_on_the_mount(mount, obj):
    import h5py
    import netCDF4
    import numpy as np
    import xarray as xr

    path = str(path_of(mount, obj))
    counts = radiance_counts(obj.bucket, obj.key)
    with netCDF4.Dataset(path) as ds, netCDF4.Dataset("source", memory=obj.data) as src:
        assert ds.platform_ID == "G16" and ds.dataset_name == obj.name
        np.testing.assert_array_equal(ds["Rad"][:], src["Rad"][:])  # scaled + masked
        ds["Rad"].set_auto_maskandscale(False)
        np.testing.assert_array_equal(ds["Rad"][:], counts)
        assert int(ds["band_id"][...]) == 13
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["Rad"][...], counts)
        assert f["Rad"].attrs["scale_factor"] == np.float32(0.0616)
    with xr.open_dataset(path, engine="h5netcdf", decode_times=False) as ds, \
            netCDF4.Dataset("source", memory=obj.data) as src:
        np.testing.assert_allclose(ds["Rad"].values, src["Rad"][:].filled(np.nan))
        assert float(ds["t"]) == float(src["t"][...])


# --- teardown --------------------------------------------------------------

def test_unmount_leaves_nothing_mounted(mount_factory):
    m = mount_factory("short-lived")
    assert (m.path / "noaa-goes16").is_dir()
    m.unmount()
    with open("/proc/mounts") as f:
        assert str(m.path) not in f.read()
