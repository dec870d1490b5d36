"""The friendly view (issue 6): goesNN/<product>/<band>/<day>/<hour>/<NOAA name> symlinks into
the mirror view (the short <HHMM>.nc names resolve too, unlisted), latest.nc, at/<time>.nc, the goes-east/goes-west aliases, user.goes.* xattrs,
and Python NetCDF readers run unchanged on friendly paths.

Each test gets a fresh mount (empty cache) of goes16, 17 and 18 through the recording proxy.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.goes_fixtures import (GLM_HOUR, LARGE_KEY, MCMIP_HOUR, RADC_HOUR, RADC_NEXT_HOUR,
                                          RADM_HOUR, fixture_objects, large_radiance_counts,
                                          parse_scan_start)

OBJECTS = {(o.bucket, o.key): o for o in fixture_objects()}
C13_NAME = re.compile(  # satpy's abi_l1b file pattern, as a regex
    r"OR_ABI-L1b-Rad(?P<sector>[CFM][12]?)-M(?P<mode>\d)C(?P<channel>\d\d)_(?P<platform>G\d\d)"
    r"_s(?P<start>\d{14})_e(?P<end>\d{14})_c(?P<created>\d{14})\.nc")


@pytest.fixture
def mount(mount_factory):
    return mount_factory("m", "16,17,18")


def keys_in(bucket: str, prefix: str, band: str | None = "C13") -> list[str]:
    """GOES-named fixture keys directly in `prefix` (of one band, unless band is None)."""
    return sorted(k for b, k in OBJECTS if b == bucket and k.startswith(prefix)
                  and "/" not in k[len(prefix):] and parse_scan_start(k) is not None
                  and (band is None or f"{band}_" in k))


def key_with(bucket: str, *parts: str) -> str:
    """The one fixture key of `bucket` containing every one of `parts`."""
    found = [k for b, k in OBJECTS if b == bucket and all(p in k for p in parts)]
    assert len(found) == 1, (parts, found)
    return found[0]


def start_of(key: str) -> datetime:
    return datetime.fromtimestamp(parse_scan_start(key.rsplit("/", 1)[-1]), timezone.utc)


def mirror(mount, bucket: str, key: str) -> Path:
    return mount.path / bucket / key


def assert_link_to(link: Path, mount, bucket: str, key: str) -> None:
    """`link` is a relative symlink to the mirror file of (bucket, key), mtime = scan start."""
    target = os.readlink(link)
    assert not target.startswith("/"), f"absolute link {target}"
    assert target.endswith(f"{bucket}/{key}"), (link, target)
    assert os.path.realpath(link) == str(mirror(mount, bucket, key).resolve()), (link, target)
    assert abs(os.lstat(link).st_mtime - parse_scan_start(key)) < 1e-3, link
    assert os.stat(link).st_size == len(OBJECTS[(bucket, key)].data), link


def noaa_name(key: str) -> str:
    """What an hour folder lists for a key: its NOAA file name (satpy recognises files by it)."""
    return key.rsplit("/", 1)[-1]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "LC_ALL": "C"})


# --- 1. listing ------------------------------------------------------------

def test_levels_list_products_bands_days_and_hours(mount):
    g16 = mount.path / "goes16"
    assert sorted(os.listdir(g16)) == ["LCFA", "MCMIPF", "RadC", "RadF", "RadM1", "RadM2"]
    assert sorted(os.listdir(g16 / "RadC")) == [f"C{b:02d}" for b in range(1, 17)]
    days = ["2023-03-06", "2023-03-07", "2023-03-09", "2023-03-10"]
    assert sorted(os.listdir(g16 / "RadC/C13")) == days + ["latest.nc"]
    assert sorted(os.listdir(g16 / "RadC/C13/2023-03-07")) == ["00", "14", "15", "latest.nc"]
    # 01h is missing from the bucket; 03h holds only C01: both are empty, never an error.
    assert sorted(os.listdir(g16 / "RadC/C13/2023-03-09")) == ["00", "02", "03", "latest.nc"]
    assert os.listdir(g16 / "RadC/C13/2023-03-09/03") == []
    assert os.listdir(g16 / "RadC/C13/2023-03-09/01") == []
    # Days without data are empty too.
    assert os.listdir(g16 / "RadC/C13/2023-03-08") == []
    assert os.listdir(g16 / "RadC/C13/2030-01-01") == []


@pytest.mark.parametrize("prefix", [RADC_HOUR, RADC_NEXT_HOUR])
def test_hour_has_one_link_per_scan(mount, prefix):
    keys = keys_in("noaa-goes16", prefix)
    hour_dir = mount.path / "goes16/RadC/C13/2023-03-07" / prefix.split("/")[-2]
    # One leaf per HHMM slot; in a shared slot the later creation stamp wins.
    winners: dict[str, str] = {}
    for key in keys:
        leaf = start_of(key).strftime("%H%M.nc")
        if leaf not in winners or C13_NAME.search(key)["created"] > C13_NAME.search(winners[leaf])["created"]:
            winners[leaf] = key
    listed = sorted(noaa_name(k) for k in winners.values())
    assert sorted(os.listdir(hour_dir)) == listed
    matched = sorted(os.path.basename(p) for p in glob.glob(str(hour_dir / "*.nc")))
    assert matched == listed, "a glob must yield each scan exactly once"

    for leaf, key in winners.items():
        for link in (hour_dir / noaa_name(key), hour_dir / leaf):  # listed name, and the short alias
            assert link.is_symlink()
            assert os.readlink(link) == "../../../../../noaa-goes16/" + key
            assert_link_to(link, mount, "noaa-goes16", key)
        # Name-based readers (satpy) recognise the listed name itself.
        parsed = C13_NAME.fullmatch(noaa_name(key))
        assert parsed and parsed["channel"] == "13" and parsed["sector"] == "C" and parsed["platform"] == "G16"

    # `ls -t` sorts the links by observation time.
    assert run("ls", "-t", str(hour_dir)).stdout.split() == [noaa_name(winners[l]) for l in sorted(winners, reverse=True)]


def test_shared_slot_goes_to_latest_creation(mount):
    key = key_with("noaa-goes16", RADC_NEXT_HOUR, "s2023066151120", "_c20230661540000")
    assert_link_to(mount.path / "goes16/RadC/C13/2023-03-07/15/1511.nc", mount, "noaa-goes16", key)


# --- 2. latest.nc ----------------------------------------------------------

@pytest.mark.parametrize("relative,key_parts", [
    # Band folder: 03-10 has no C13 and 03-09 03h has none either: walk back to 02:36.
    ("goes16/RadC/C13/latest.nc", ("/2023/068/02/", "s2023068023620")),
    ("goes16/RadC/C01/latest.nc", ("/2023/069/00/", "C01_")),
    # Day folders: the newest scan of that day; a shared slot goes to the latest creation.
    ("goes16/RadC/C13/2023-03-07/latest.nc", ("s2023066151120", "_c20230661540000")),
    ("goes16/RadC/C13/2023-03-09/latest.nc", ("s2023068023620",)),
    ("goes16/RadM2/C13/latest.nc", ("RadM2-", "s2023066140254")),
    ("goes16/MCMIPF/latest.nc", ("MCMIPF", "s2023066141020")),
])
def test_latest_is_the_newest_scan(mount, relative, key_parts):
    key = key_with("noaa-goes16", *key_parts)
    link = mount.path / relative
    assert_link_to(link, mount, "noaa-goes16", key)
    assert link.name in os.listdir(link.parent)
    assert link.read_bytes() == OBJECTS[("noaa-goes16", key)].data


@pytest.mark.parametrize("relative", [
    "goes16/RadC/C13/2023-03-10/latest.nc",  # a day with data, but none for this band
    "goes16/RadC/C13/2023-03-08/latest.nc",  # a day missing from the bucket
    "goes16/RadC/C02/latest.nc",  # a band with no data at all
])
def test_latest_without_data_is_enoent(mount, relative):
    link = mount.path / relative
    with pytest.raises(FileNotFoundError):
        os.lstat(link)
    assert "latest.nc" not in os.listdir(link.parent)


# --- 3. at/<time>.nc -------------------------------------------------------

@pytest.mark.parametrize("request_name,key_parts", [
    ("2023-03-07T14:21:17Z", ("s2023066142117",)),  # exact (to the second)
    ("2023-03-07T14:23Z", ("s2023066142117",)),  # between 14:21:17.6 and 14:26:17.2
    ("2023-03-07T14:59Z", ("s2023066150120",)),  # 15:01:20 is nearer than 14:56:17.6
    ("2023-03-06T23:59Z", ("s2023066000120",)),  # across midnight: 00:01:20 on the next day
    ("2023-03-07T15:03:50Z", ("s2023066150120",)),  # tie 150 s each way: later creation wins
    ("2023-03-07T15:11:20Z", ("s2023066151120", "_c20230661540000")),  # shared slot
    ("2023-03-07T14:23Z~2m", ("s2023066142117",)),  # 102 s within 2 min
    ("2023-03-07T12:30Z~2h", ("s2023066140117",)),  # 91 min within 2 h
    ("2023-03-07T00:00Z~90s", ("s2023066000120",)),  # 80 s within 90 s
    ("2023-03-07T14:23Z~90s", None),  # nearest is 102 s away
    ("2023-03-07T00:00Z~1m", None),  # nearest is 80 s away
    ("2023-03-07T23:59Z", None),  # no 23h, no next day, 15:11 is far
    ("2023-03-07T12:30Z", None),  # default tolerance 1 h; nearest is 91 min away
])
def test_nearest_time(mount, request_name, key_parts):
    link = mount.path / "goes16/RadC/C13/at" / f"{request_name}.nc"
    if key_parts is None:
        with pytest.raises(FileNotFoundError):
            os.lstat(link)
        return
    key = key_with("noaa-goes16", "RadC-M6C13_", *key_parts)
    assert os.readlink(link) == "../../../../noaa-goes16/" + key
    assert_link_to(link, mount, "noaa-goes16", key)


@pytest.mark.parametrize("folder", ["goes16/RadC/C13/at", "goes-east/RadC/C13/at"])
def test_malformed_at_names_are_enoent_and_the_daemon_lives(mount, proxy, folder):
    # Each of these used to trap the daemon (for every user of the mount) or loop for billions of steps.
    names = [".nc", "~.nc", "x", "~", "2023-03-07T14:23Z~infh.nc", "2023-03-07T14:23Z~nanm.nc",
             "2023-03-07T14:23Z~1e16h.nc", "2023-03-07T14:23Z~1e9h.nc", "2023-03-07T14:23Z~2000h.nc",
             "2023-03-07T14:23Z~-1h.nc", "2023-03-07T99:99Z.nc", "9999-12-31T23:59Z~1m.nc"]
    for name in names:
        with pytest.raises(FileNotFoundError):
            os.stat(mount.path / folder / name)
    # A wide tolerance is bounded: at most 2·24+1 hour listings, however wide it asks.
    proxy.reset()
    near = mount.path / folder / "2023-03-07T14:23Z~24h.nc"
    assert os.path.exists(near)
    listings = [r for r in proxy.records() if r.is_listing]
    assert 0 < len(listings) <= 49 + 8, len(listings)
    assert os.path.exists(mount.path / ".stats") and mount.is_mounted()


def test_at_folder_is_not_listed(mount):
    assert "at" not in os.listdir(mount.path / "goes16/RadC/C13")


# --- 4. Meso split, band-less products --------------------------------------

@pytest.mark.parametrize("sector", ["M1", "M2"])
def test_meso_sectors_split(mount, sector):
    keys = [k for b, k in OBJECTS if b == "noaa-goes16" and k.startswith(RADM_HOUR) and f"Rad{sector}-" in k]
    hour_dir = mount.path / f"goes16/Rad{sector}/C13/2023-03-07/14"
    leaves = {start_of(k).strftime("%H%M%S.nc"): k for k in keys}
    assert len(leaves) == len(keys) == 3
    assert sorted(os.listdir(hour_dir)) == sorted(map(noaa_name, keys))
    for leaf, key in leaves.items():
        assert_link_to(hour_dir / leaf, mount, "noaa-goes16", key)


def test_mcmip_has_no_band_level(mount):
    product = mount.path / "goes16/MCMIPF"
    assert sorted(os.listdir(product)) == ["2023-03-07", "latest.nc"]
    assert not (product / "C13").exists()
    keys = keys_in("noaa-goes16", MCMIP_HOUR, band=None)
    leaves = {start_of(k).strftime("%H%M.nc"): k for k in keys}
    assert sorted(leaves) == ["1400.nc", "1410.nc"]
    assert sorted(os.listdir(product / "2023-03-07/14")) == sorted(map(noaa_name, keys))
    for leaf, key in leaves.items():
        assert_link_to(product / "2023-03-07/14" / leaf, mount, "noaa-goes16", key)


def test_glm_has_no_band_level_and_second_leaves(mount):
    product = mount.path / "goes16/LCFA"
    assert sorted(os.listdir(product)) == ["2023-03-07", "latest.nc"]
    keys = [k for b, k in OBJECTS if b == "noaa-goes16" and k.startswith(GLM_HOUR)]
    leaves = {start_of(k).strftime("%H%M%S.nc"): k for k in keys}
    assert len(leaves) == len(keys) > 1000
    hour_dir = product / "2023-03-07/14"
    assert sorted(os.listdir(hour_dir)) == sorted(map(noaa_name, keys))
    for leaf in sorted(leaves)[::97]:
        assert_link_to(hour_dir / leaf, mount, "noaa-goes16", leaves[leaf])


# --- 5. goes-east / goes-west ----------------------------------------------

def test_goes_east_2023_is_goes16(mount):
    east = mount.path / "goes-east/RadC/C13/2023-03-07/14"
    assert sorted(os.listdir(east)) == sorted(os.listdir(mount.path / "goes16/RadC/C13/2023-03-07/14"))
    for leaf in os.listdir(east):
        key = RADC_HOUR + os.readlink(east / leaf).rsplit("/", 1)[-1]
        assert os.readlink(east / leaf) == "../../../../../noaa-goes16/" + key
        assert_link_to(east / leaf, mount, "noaa-goes16", key)
    near = mount.path / "goes-east/RadC/C13/at/2023-03-07T14:23Z.nc"
    assert_link_to(near, mount, "noaa-goes16", key_with("noaa-goes16", "s2023066142117"))


@pytest.mark.parametrize("day,bucket,hhmm", [
    ("2023-01-03", "noaa-goes17", "1401"),  # before the handover: G17
    ("2023-01-04", "noaa-goes18", "1406"),  # handover day: G18
    ("2023-03-07", "noaa-goes18", "1406"),
])
def test_goes_west_follows_the_handover(mount, day, bucket, hhmm):
    hour_dir = mount.path / "goes-west/RadC/C13" / day / "14"
    doy = datetime.strptime(day, "%Y-%m-%d").strftime("%j")
    key = key_with(bucket, f"/2023/{doy}/14/", f"_s2023{doy}{hhmm}")
    assert noaa_name(key) in os.listdir(hour_dir)
    assert all(os.readlink(hour_dir / leaf).startswith(f"../../../../../{bucket}/") for leaf in os.listdir(hour_dir))
    assert_link_to(hour_dir / f"{hhmm}.nc", mount, bucket, key)
    near = mount.path / f"goes-west/RadC/C13/at/{day}T{hhmm[:2]}:{hhmm[2:]}Z~1m.nc"
    assert_link_to(near, mount, bucket, key)


def test_goes_west_band_lists_each_day_once(mount):
    # Each day from the satellite operational on it: G17's 01-04 and G18's 01-03 are hidden.
    names = os.listdir(mount.path / "goes-west/RadC/C13")
    assert sorted(names) == ["2023-01-03", "2023-01-04", "2023-03-07", "latest.nc"]
    assert os.listdir(mount.path / "goes-west/RadC/C13/2023-01-03/14") == [
        noaa_name(key_with("noaa-goes17", "/2023/003/14/", "_s20230031401"))]
    assert os.listdir(mount.path / "goes-west/RadC/C13/2023-01-04/14") == [
        noaa_name(key_with("noaa-goes18", "/2023/004/14/", "_s20230041406"))]


# --- 6. Python readers on friendly paths ------------------------------------
# Readers run in a child Python, as a user's script would: h5py holds the GIL while it reads,
# and the recording proxy is a thread of this process, so an h5py read here that reaches the
# network would wait on itself until goesfs's read timeout.

def in_child(tmp_path: Path, code: str, **args):
    """Run `code` in a fresh interpreter with `args` bound; return the `result` it sets."""
    given, taken = tmp_path / "child-args.pickle", tmp_path / "child-result.pickle"
    given.write_bytes(pickle.dumps(args))
    script = (f"import pickle\nglobals().update(pickle.loads(open({str(given)!r}, 'rb').read()))\n"
              f"{textwrap.dedent(code)}\nopen({str(taken)!r}, 'wb').write(pickle.dumps(result))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    if done.stdout:
        print(done.stdout)
    return pickle.loads(taken.read_bytes())


def source_copy(tmp_path: Path, link: Path) -> Path:
    """The fixture bytes behind a friendly link, written to a local file under the same name."""
    target = os.path.realpath(link)
    bucket, key = target.split("/mnt/", 1)[1].split("/", 1)
    local = tmp_path / "source" / os.path.basename(key)
    local.parent.mkdir(exist_ok=True)
    local.write_bytes(OBJECTS[(bucket, key)].data)
    return local


FRIENDLY_NC = "goes16/RadC/C13/2023-03-07/14/1401.nc"


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_xarray_open_dataset_on_a_friendly_path(mount, tmp_path, engine):
    import xarray as xr

    link = mount.path / FRIENDLY_NC
    got = in_child(tmp_path, """
        import xarray as xr
        with xr.open_dataset(path, engine=engine) as ds:
            result = ds.load()
    """, path=str(link), engine=engine)
    with xr.open_dataset(source_copy(tmp_path, link), engine=engine) as ref:
        xr.testing.assert_identical(got, ref.load())
    assert got.attrs["dataset_name"] == os.path.basename(os.path.realpath(link))


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_xarray_open_mfdataset_over_an_hour(mount, tmp_path, engine):
    pytest.importorskip("dask", reason="xarray.open_mfdataset needs dask (not in tests/requirements.txt)")
    import xarray as xr

    links = sorted(glob.glob(str(mount.path / "goes16/RadC/C13/2023-03-07/15/*.nc")))
    assert [C13_NAME.fullmatch(os.path.basename(p))["start"][7:11] for p in links] == ["1501", "1506", "1511"]
    got = in_child(tmp_path, """
        import glob, xarray as xr
        with xr.open_mfdataset(sorted(glob.glob(pattern)), engine=engine, combine="nested",
                               concat_dim="t", preprocess=lambda ds: ds.set_coords("t")) as ds:
            result = ds.load()
    """, pattern=str(mount.path / "goes16/RadC/C13/2023-03-07/15/*.nc"), engine=engine)
    sources = [source_copy(tmp_path, Path(p)) for p in links]
    with xr.open_mfdataset(sources, engine=engine, combine="nested", concat_dim="t",
                           preprocess=lambda ds: ds.set_coords("t")) as ref:
        assert got["Rad"].shape == (3, 200, 300)
        xr.testing.assert_identical(got, ref.load())
    # The scan times, one per file, in order: 15:01, 15:06, 15:11.
    assert [str(t)[11:16] for t in got["t"].values] == ["15:01", "15:06", "15:11"]


def test_netcdf4_and_h5py_on_a_friendly_path(mount, tmp_path):
    import h5py
    import netCDF4

    link = mount.path / FRIENDLY_NC
    got = in_child(tmp_path, """
        import h5py, netCDF4
        with netCDF4.Dataset(path) as ds:
            nc = {"attrs": {a: ds.getncattr(a) for a in ds.ncattrs()},
                  "vars": {n: (v[...], {a: v.getncattr(a) for a in v.ncattrs()}) for n, v in ds.variables.items()}}
        with h5py.File(path, "r") as f:
            h5 = {n: (f[n][...], sorted(f[n].attrs)) for n in ("Rad", "DQF", "x", "y")}
        result = {"nc": nc, "h5": h5}
    """, path=str(link))
    source = source_copy(tmp_path, link)
    with netCDF4.Dataset(source) as ref:
        assert got["nc"]["attrs"].keys() == set(ref.ncattrs()) and got["nc"]["attrs"]["platform_ID"] == "G16"
        assert sorted(got["nc"]["vars"]) == sorted(ref.variables)
        for name, (values, attrs) in got["nc"]["vars"].items():
            np.testing.assert_array_equal(values, ref[name][...], err_msg=name)
            assert attrs.keys() == set(ref[name].ncattrs()), name
    with h5py.File(source, "r") as ref:
        for name, (values, attrs) in got["h5"].items():
            np.testing.assert_array_equal(values, ref[name][...], err_msg=name)
            assert attrs == sorted(ref[name].attrs), name


# --- 7. a small slice of a large file fetches little ------------------------

@pytest.mark.parametrize("reader", ["h5py", "xarray-h5netcdf"])
def test_small_slice_fetches_far_less_than_the_file(mount, proxy, tmp_path, reader):
    link = mount.path / "goes16/RadF/C13/2023-03-07/15/1500.nc"
    assert_link_to(link, mount, "noaa-goes16", LARGE_KEY)
    size = os.stat(link).st_size
    proxy.reset()  # only the reads count, not the listings
    got = in_child(tmp_path, """
        window = (slice(1000, 1100), slice(1500, 1600))
        if reader == "h5py":
            import h5py
            with h5py.File(path, "r") as f:
                result = f["Rad"][window]
        else:
            import xarray as xr
            with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False) as ds:
                result = ds["Rad"][window].values
    """, path=str(link), reader=reader)
    np.testing.assert_array_equal(got, large_radiance_counts("noaa-goes16", LARGE_KEY)[1000:1100, 1500:1600])

    gets = proxy.object_gets(f"/noaa-goes16/{LARGE_KEY}")
    fetched = sum(r.bytes_sent for r in gets)
    print(f"\n{reader}: 100x100 slice fetched {fetched} of {size} bytes "
          f"({100 * fetched / size:.1f}%) in {len(gets)} GETs: {[r.range for r in gets]}")
    assert fetched < 0.4 * size, (fetched, size)


# --- 8. user.goes.* xattrs -------------------------------------------------

def expected_xattrs(bucket: str, key: str) -> dict[str, str]:
    """What the file name says, in goesfs's UTC notation (2023-03-07T14:01:17.1Z)."""
    def iso(stamp: str) -> str:
        return datetime.strptime(stamp[:13], "%Y%j%H%M%S").strftime("%Y-%m-%dT%H:%M:%S") + f".{stamp[13]}Z"
    s, e, c = re.search(r"_s(\d{14})_e(\d{14})_c(\d{14})", key).groups()
    out = {"user.goes.key": key, "user.goes.bucket": bucket, "user.goes.start": iso(s),
           "user.goes.end": iso(e), "user.goes.created": iso(c),
           "user.goes.platform": re.search(r"_(G\d\d)_", key)[1]}
    band = re.search(r"-M\dC(\d\d)_", key)
    if band:
        out["user.goes.band"] = f"C{band[1]}"
    return out


@pytest.mark.parametrize("mirror_key,friendly", [
    (RADC_HOUR + "OR_ABI-L1b-RadC-M6C13_G16_s2023066140117", "goes16/RadC/C13/2023-03-07/14/1401.nc"),
    (MCMIP_HOUR, "goes16/MCMIPF/2023-03-07/14/1400.nc"),
])
def test_xattrs_on_mirror_file_and_through_link(mount, mirror_key, friendly):
    key = key_with("noaa-goes16", mirror_key, "s2023066140")
    path = mirror(mount, "noaa-goes16", key)
    expected = expected_xattrs("noaa-goes16", key)
    got = {n: os.getxattr(path, n).decode() for n in os.listxattr(path) if n.startswith("user.goes.")}
    etag = got.pop("user.goes.etag")
    assert etag.strip('"') == hashlib.md5(OBJECTS[("noaa-goes16", key)].data).hexdigest()
    assert got == expected
    # Through the friendly link: getxattr follows it to the mirror file.
    link = mount.path / friendly
    assert os.path.realpath(link) == str(path.resolve())
    assert {n: os.getxattr(link, n).decode() for n in os.listxattr(link)
            if n.startswith("user.goes.")} == {**expected, "user.goes.etag": etag}


# --- 7. satpy, which recognises files by their NOAA names ---------------------

@pytest.mark.parametrize("view", ["goes16/RadC/C13/2023-03-07/15", "noaa-goes16/ABI-L1b-RadC/2023/066/15"])
def test_satpy_finds_and_opens_files_on_either_view(mount, tmp_path, view):
    pytest.importorskip("satpy", reason="satpy is in tests/requirements.txt")
    folder = mount.path / view
    got = in_child(tmp_path, """
        import glob, os, warnings
        warnings.simplefilter("ignore")
        from satpy import Scene, find_files_and_readers
        found = find_files_and_readers(base_dir=folder, reader="abi_l1b")
        scene = Scene(reader="abi_l1b", filenames=sorted(glob.glob(os.path.join(folder, "*.nc"))))
        result = {"found": sorted(os.path.basename(p) for p in found["abi_l1b"]),
                  "start": scene.start_time.isoformat(), "bands": sorted(str(n) for n in scene.available_dataset_names())}
    """, folder=str(folder))
    expected = sorted(noaa_name(k) for k in keys_in("noaa-goes16", RADC_NEXT_HOUR) if k.endswith(".nc"))
    # The friendly hour hides a superseded duplicate (the later creation wins its slot).
    if view.startswith("goes16"):
        expected = sorted(os.listdir(folder))
    assert got["found"] == expected and len(expected) >= 3
    assert got["start"].startswith("2023-03-07T15:01")
    assert "C13" in got["bands"]
