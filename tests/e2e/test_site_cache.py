"""Issue 12, the site cache tier: nginx's slice cache (mount-scripts/goesfs-site-cache) shared by
several goesfs nodes, and a Dask cluster reading a friendly-view day through a mount.

On one machine, loopback only: the origin is moto behind the recording proxy (the proxy's log
counts what reaches the origin); the site cache is started with the real script in front of it;
two mounts with separate cache directories act as two nodes, each with the site cache as its
first source and the origin as its second. Request counts at the origin are asserted only where
they must be 0: goesfs's block and request sizes are not this file's business.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import MOUNTS_KEY, GoesfsMount
from tests.fixtures.goes_fixtures import MiB, big_object, fixture_objects, stress_objects
from tests.support.polling import wait_for
from tests.support.site_cache import SCRIPT, SiteCache, nginx_path

SLICE = 8 * MiB  # the template's `slice 8m`
BIG = big_object()  # 24 MiB + 4321 in noaa-goes19: four slices
SMALL = stress_objects()[:6]  # 1-3 MiB each
OBJECTS = {(o.bucket, o.key): o for o in fixture_objects()}

needs_nginx = pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed (scripts/test installs it)")


@pytest.fixture
def site_cache(tmp_path, proxy):
    """The site cache in front of the origin (the session proxy, its log emptied for this test)."""
    cache = SiteCache(tmp_path / "site-cache", proxy.url)
    try:
        yield cache.start()
    finally:
        cache.stop()


@pytest.fixture
def node_factory(request, goesfs_bin, proxy, tmp_path):
    """goesfs "nodes": mounts whose sources are the site cache, then the origin (in that order)."""
    made: list[GoesfsMount] = []
    request.node.stash[MOUNTS_KEY] = made

    def make(name: str, cache_url: str, *extra: str) -> GoesfsMount:
        m = GoesfsMount(goesfs_bin, proxy.url, tmp_path / name, satellites="19")
        made.append(m)
        return m.mount("--source", cache_url, "--source", proxy.url, *extra)

    yield make
    for m in made:
        m.unmount()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """The fixture bytes of the objects read here, as local files for cmp."""
    folder = tmp_path_factory.mktemp("sources")
    files = {}
    for o in [BIG, *SMALL]:
        files[o.key] = folder / o.name
        files[o.key].write_bytes(o.data)
    return files


def assert_same(mount: GoesfsMount, obj, sources) -> None:
    done = subprocess.run(["cmp", str(sources[obj.key]), str(mount.path / obj.bucket / obj.key)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{obj.key}: {done.stdout}{done.stderr}\n{mount.log_tail()}"


def get(url: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


# --- 1. the cache's replies are what goesfs checks: Content-Range, ETag, If-Match -------------

@needs_nginx
def test_ranges_through_the_cache_keep_content_range_etag_and_if_match(site_cache, proxy):
    path = f"/{BIG.bucket}/{BIG.key}"
    data, total = BIG.data, len(BIG.data)
    _, origin_headers, _ = get(proxy.url, path, Range="bytes=0-0")
    etag = origin_headers["etag"]

    wanted = [(0, MiB - 1),                        # goesfs's first block: fills slice 0
              (MiB, 2 * MiB - 1),                  # inside slice 0: a hit
              (SLICE - 100, SLICE + 99),           # across slices 0 and 1
              (3 * SLICE, total - 1)]              # the last, short slice
    statuses = []
    for first, last in wanted:
        status, headers, body = get(site_cache.url, path, Range=f"bytes={first}-{last}",
                                    **{"If-Match": etag})
        assert status == 206, (first, last, status, headers)
        assert headers["content-range"] == f"bytes {first}-{last}/{total}", headers
        assert headers["etag"] == etag and body == data[first:last + 1]
        statuses.append(headers["x-cache-status"])
    assert statuses[:2] == ["MISS", "HIT"], statuses

    # A wrong ETag: 412 from nginx itself, for a cached slice and for one never fetched.
    proxy.reset()
    for first in (0, 2 * SLICE):
        status, headers, _ = get(site_cache.url, path, Range=f"bytes={first}-{first + 99}",
                                 **{"If-Match": '"0123456789abcdef0123456789abcdef"'})
        assert status == 412, (first, status, headers)
    # nginx answers the 412 before the slice's body: that fill is dropped, not cached for a client
    # that would not take it. The right ETag then gets the slice.
    status, headers, body = get(site_cache.url, path, Range=f"bytes={2 * SLICE}-{2 * SLICE + 99}",
                                **{"If-Match": etag})
    assert status == 206 and headers["etag"] == etag and body == data[2 * SLICE:2 * SLICE + 100]
    assert headers["content-range"] == f"bytes {2 * SLICE}-{2 * SLICE + 99}/{total}"

    assert get(site_cache.url, "/healthz")[:3:2] == (200, b"ok\n")
    # Other buckets are refused (the default upstream would serve every public bucket), as are writes.
    assert get(site_cache.url, "/some-other-bucket/key")[0] == 403
    conn = http.client.HTTPConnection("127.0.0.1", site_cache.port, timeout=10)
    conn.request("PUT", path, body=b"x")
    assert conn.getresponse().status == 403
    conn.close()


@needs_nginx
def test_readers_missing_one_slice_at_once_share_one_fill(site_cache, proxy):
    obj = SMALL[-1]
    path = f"/{obj.bucket}/{obj.key}"
    replies: list[tuple[int, bytes]] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        status, _, body = get(site_cache.url, path, Range="bytes=1000-1999")
        replies.append((status, body))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert replies == [(206, obj.data[1000:2000])] * 8
    assert len(proxy.object_gets(f"/{obj.bucket}/{obj.key}")) == 1  # proxy_cache_lock


# --- 2. two nodes: what A read, B reads from the site cache, with 0 requests at the origin ------

@needs_nginx
def test_node_b_reads_what_node_a_read_without_touching_the_origin(node_factory, site_cache, proxy, sources):
    # --no-prefetch: each node asks for exactly the blocks it reads, so B asks for nothing A did not.
    a = node_factory("node-a", site_cache.url, "--no-prefetch")
    b = node_factory("node-b", site_cache.url, "--no-prefetch")
    # Each mount probes every source once (network diagnostics); let those land before counting.
    wait_for(lambda: sum("max-keys=1" in r.query for r in proxy.records(wait=False)) >= 2, 15,
             "both nodes' source probes at the origin")
    proxy.reset()

    for obj in [BIG, *SMALL]:
        assert_same(a, obj, sources)
    a_gets = proxy.object_gets()
    a_listings = [r for r in proxy.records() if r.is_listing]
    fetched = sum(r.bytes_sent for r in a_gets)
    read = sum(o.size for o in [BIG, *SMALL])
    # The cache fetched whole slices: at least what A read, in one request per slice at most.
    slices = sum(-(-o.size // SLICE) for o in [BIG, *SMALL])
    assert fetched >= read and len(a_gets) <= slices, (len(a_gets), slices, fetched, read)

    proxy.reset()
    seen_before = len(site_cache.lines())
    for obj in [BIG, *SMALL]:
        assert_same(b, obj, sources)
    assert proxy.records() == [], [(r.path, r.query, r.range) for r in proxy.records()]
    b_lines = site_cache.lines()[seen_before:]
    assert b_lines and all(line.cache == "HIT" for line in b_lines), b_lines

    # A third look from outside: the same range again is a HIT, with the origin's ETag.
    status, headers, _ = get(site_cache.url, f"/{BIG.bucket}/{BIG.key}", Range=f"bytes=0-{MiB - 1}")
    assert (status, headers["x-cache-status"]) == (206, "HIT")
    print(f"\nsite cache figures: node A read {read} bytes of {1 + len(SMALL)} files: origin "
          f"{len(a_gets)} data requests ({fetched} bytes), {len(a_listings)} listings; node B: "
          f"0 origin requests, {len(b_lines)} requests to the site cache, all HIT")


# --- 3. the cache tier goes away mid-run: reads move to the origin, none fails --------------------

@needs_nginx
def test_stopping_the_site_cache_mid_run_moves_reads_to_the_origin(node_factory, site_cache, proxy, sources):
    node = node_factory("node", site_cache.url)
    path = node.path / BIG.bucket / BIG.key
    expected = BIG.data
    got = bytearray()
    errors: list[BaseException] = []
    partly_read, cache_stopped = threading.Event(), threading.Event()

    def reader() -> None:
        try:
            with open(path, "rb") as f:
                while chunk := f.read(MiB):
                    got.extend(chunk)
                    if len(got) == 3 * MiB:
                        partly_read.set()
                        assert cache_stopped.wait(60), "the cache was not stopped"
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            partly_read.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert partly_read.wait(60)
    site_cache.stop()  # SIGTERM: nginx closes its connections, goesfs's readahead with them
    proxy.reset(wait=False)
    stopped_at = time.monotonic()
    cache_stopped.set()
    thread.join(120)
    rest_seconds = time.monotonic() - stopped_at
    assert not thread.is_alive() and not errors, (errors, node.log_tail())
    assert bytes(got) == expected
    # The rest of the object came from the origin directly, as do other files now.
    for obj in SMALL[:3]:
        assert_same(node, obj, sources)
    assert proxy.object_gets(), "nothing reached the origin after the cache stopped"
    print(f"\nsite cache stopped after 3 MiB of {len(expected)}: the rest read in {rest_seconds:.2f} s, "
          f"{len(proxy.object_gets())} data requests at the origin since, 0 failed reads")


# --- 4. the script's refusals -----------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--listen", "1.2.3.4"], "--listen must be ADDR:PORT"),
    (["--upstream", "http://host/;evil"], "--upstream must be"),
    (["--max-size", "lots"], "--max-size must be"),
    (["--cache-dir", "relative/dir"], "must be absolute"),
    (["--cache-dir", "/tmp/a;b"], "not allowed"),
])
def test_script_refuses_bad_options_before_touching_anything(tmp_path, args, message):
    done = subprocess.run([str(SCRIPT), "--print-config", "--state-dir", str(tmp_path / "s"), *args],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not (tmp_path / "s").exists()


def test_script_renders_every_placeholder():
    done = subprocess.run([str(SCRIPT), "--print-config", "--upstream", "https://s3.amazonaws.com"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "@" not in text.replace("@…@", ""), [line for line in text.splitlines() if "@" in line]
    for needed in ("slice 8m;", "proxy_cache_key $uri$is_args$args$slice_range;",
                   "proxy_set_header Range $slice_range;", "proxy_cache_lock on;",
                   "proxy_cache_valid 200 206 365d;", "proxy_cache_valid 200 30s;",
                   "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
                   'proxy_set_header Connection "";', "proxy_http_version 1.1;",
                   "proxy_ssl_server_name on;", "proxy_set_header Host s3.amazonaws.com;",
                   "server s3.amazonaws.com:443;", "proxy_pass https://goes_origin;",
                   "add_header X-Cache-Status $upstream_cache_status always;"):
        assert needed in text, needed


def test_site_cache_unit_passes_systemd_analyze(tmp_path):
    analyze = "/usr/bin/systemd-analyze"
    if not os.path.exists(analyze):
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "goesfs-site-cache.service"
    unit.write_text((SCRIPT.parent / "goesfs-site-cache.service").read_text()
                    .replace("/usr/local/bin/goesfs-site-cache", str(SCRIPT)))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True)
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout).group(1))
    assert level <= 2.0, security.stdout[-2000:]


# --- 5. Dask: a LocalCluster of 2 worker processes reads a friendly-view day ----------------------

DAY = "goes16/RadC/C13/2023-03-07"

DASK_SCRIPT = """
import sys, pickle
import xarray as xr
from dask.distributed import Client, LocalCluster

def main():
    paths, out = sys.argv[2:], sys.argv[1]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with xr.open_mfdataset(paths, parallel=True, engine="h5netcdf", combine="nested",
                               concat_dim="t", preprocess=lambda ds: ds.set_coords("t")) as ds:
            result = ds.load()
        # Every worker took part in opening or reading (tasks ran on both processes).
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        workers = [w for w, count in executed.items() if count]
    with open(out, "wb") as f:
        pickle.dump({"result": result, "workers": len(workers)}, f)

if __name__ == "__main__":
    main()
"""


def test_dask_local_cluster_open_mfdataset_over_a_friendly_day(mount_factory, tmp_path):
    pytest.importorskip("dask.distributed", reason="dask[distributed] is in tests/requirements.txt")
    import pickle

    import xarray as xr

    mount = mount_factory("m", "16")
    # The day's NetCDF scans (14 h and 15 h; its other files are random bytes, not NetCDF).
    links = []
    for link in sorted((mount.path / DAY).glob("*/*.nc")):
        bucket, key = os.path.realpath(link).split(f"{mount.path}/", 1)[1].split("/", 1)
        if OBJECTS[(bucket, key)].kind == "netcdf":
            links.append((link, OBJECTS[(bucket, key)]))
    assert len(links) == 6 and {p.parent.name for p, _ in links} == {"14", "15"}, links

    script, out = tmp_path / "dask_day.py", tmp_path / "dask_day.pickle"
    script.write_text(textwrap.dedent(DASK_SCRIPT))
    done = subprocess.run([sys.executable, str(script), str(out), *(str(p) for p, _ in links)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:] + mount.log_tail()
    child = pickle.loads(out.read_bytes())
    got = child["result"]

    local = tmp_path / "local"
    local.mkdir()
    copies = []
    for link, obj in links:
        copies.append(local / link.name)
        copies[-1].write_bytes(obj.data)
    with xr.open_mfdataset(copies, engine="h5netcdf", combine="nested", concat_dim="t",
                           preprocess=lambda ds: ds.set_coords("t")) as ref:
        xr.testing.assert_identical(got, ref.load())
    assert got["Rad"].shape == (6, 200, 300)
    assert child["workers"] == 2, child
