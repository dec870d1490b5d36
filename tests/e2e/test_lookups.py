"""Lookups cost round trips: on a real network each LIST is 15-30 ms before the first byte.

The folders above the files (`<product>/<YYYY>/<DDD>/<HH>/`) have a shape the catalog knows, so
they need no LIST; only the hour folder is listed, once. `ls` of the upper folders still lists
what exists.
"""

from __future__ import annotations

import os

from tests.fixtures.goes_fixtures import RADC_HOUR, fixture_objects

OBJ = next(o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)
           and o.kind == "random" and o.size > 0)


def test_cold_open_of_a_known_key_is_one_list_and_the_gets(quiet_mount, proxy):
    proxy.reset()
    path = quiet_mount.path / OBJ.bucket / OBJ.key
    with open(path, "rb") as f:
        assert f.read(4096) == OBJ.data[:4096]
    listings = [r for r in proxy.records() if r.is_listing]
    assert [r.query for r in listings if "prefix=" in r.query] and len(listings) == 1, \
        [(r.path, r.query) for r in listings]
    assert "ABI-L1b-RadC%2F2023%2F066%2F14%2F" in listings[0].query


def test_upper_folders_still_list_what_exists(quiet_mount):
    bucket = quiet_mount.path / "noaa-goes16"
    assert "ABI-L1b-RadC" in os.listdir(bucket)
    assert "2023" in os.listdir(bucket / "ABI-L1b-RadC")
    assert "066" in os.listdir(bucket / "ABI-L1b-RadC/2023")
    assert "14" in os.listdir(bucket / "ABI-L1b-RadC/2023/066")
    # A name the catalog cannot vouch for is looked up in its parent's listing: absent is ENOENT.
    assert not (bucket / "not-a-product").exists()
    assert not (bucket / "ABI-L1b-RadC/2023/066/14/missing.nc").exists()
    # Once a parent's listing is at hand it is the answer, even for well-formed names.
    assert not (bucket / "ABI-L1b-RadC/2023/367").exists()
    assert not (bucket / "ABI-L1b-RadC/2023/066/24").exists()
