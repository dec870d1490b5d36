"""`goesfs prefetch`: warming the cache ahead of use, through the mount."""

from __future__ import annotations

import glob
import os
import subprocess

from tests.fixtures.goes_fixtures import RADC_HOUR, fixture_objects

HOUR = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)]


def test_prefetch_of_a_friendly_glob_leaves_nothing_to_fetch(mount, proxy, goesfs_bin):
    pattern = str(mount.path / "goes16" / "RadC" / "C13" / "2023-03-07" / "14" / "*.nc")
    links = sorted(glob.glob(pattern))
    assert links, pattern
    done = subprocess.run([goesfs_bin, "prefetch", *links, "--concurrency", "3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"prefetched {len(links)}/{len(links)} files" in done.stderr, done.stderr
    assert proxy.object_gets(), "prefetch fetched nothing"

    proxy.reset()
    by_name = {o.key.rsplit("/", 1)[1]: o for o in HOUR}
    read = []
    for link in links:
        with open(link, "rb") as f:
            data = f.read()
        original = by_name[os.readlink(link).rsplit("/", 1)[1]]
        assert data == original.data, link
        read.append(f"/{original.bucket}/{original.key}")
    # (Reading scans in order may prefetch the next hour's: only these files must not be fetched.)
    again = [r for r in proxy.object_gets() if r.path in read]
    assert again == [], "files read after the prefetch were fetched again"


def test_prefetch_names_what_it_cannot_read(mount, goesfs_bin):
    missing = mount.path / "noaa-goes16" / "no-such-folder"
    done = subprocess.run([goesfs_bin, "prefetch", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "No such file or directory" in done.stderr, done.stderr
