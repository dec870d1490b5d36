#!/usr/bin/env python3
"""Generates the benchmark bucket (noaa-goes16 layout) under DATA_DIR/noaa-goes16.

Writes DATA_DIR/manifest.json (keys of every workload's objects). Regenerates only
when the profile changed, so repeated runs reuse the data.

usage: gen_data.py DATA_DIR --profile full|quick
"""
import argparse
import datetime as dt
import json
import os
import shutil
import sys

import numpy as np

PROFILES = {
    # big: MiB of the sequential/random object; hour: objects in the listed folder;
    # c02: NetCDF grid (rows, cols); anim: scans x MiB; rss: 64 files x KiB.
    "full": dict(big_mib=256, ttfb_mib=8, hour=2000, c02=(6000, 10000), anim=(48, 3), rss_kib=4096),
    "quick": dict(big_mib=16, ttfb_mib=2, hour=200, c02=(1500, 2500), anim=(8, 0.5), rss_kib=256),
    # bench/run --latency: the sizes. par: files x MiB read by 8 threads; anim_nc: C13 CONUS
    # NetCDF scans (count, rows, cols) for the animation walk (a 500x500 slice of each).
    "latency": dict(big_mib=256, ttfb_mib=64, hour=2000, c02=(6000, 10000), anim=(0, 0), rss_kib=0,
                    par=(16, 32), anim_nc=(12, 1500, 2500)),
    "latency-quick": dict(big_mib=16, ttfb_mib=4, hour=200, c02=(1500, 2500), anim=(0, 0), rss_kib=0,
                          par=(16, 2), anim_nc=(4, 1000, 1500)),
}
BUCKET = "noaa-goes16"
VERSION = 1  # bump when the layout changes, so old data is regenerated


def goes_name(product, band, start, platform="G16"):
    """OR_<product>-M6C<band>_<platform>_s<start>_e<end>_c<created>.nc (GOES naming, tenths of s)."""
    def stamp(t):
        return t.strftime("%Y%j%H%M%S") + str(t.microsecond // 100000)
    end = start + dt.timedelta(minutes=2, seconds=23)
    created = end + dt.timedelta(seconds=5)
    return f"OR_{product}-M6C{band:02d}_{platform}_s{stamp(start)}_e{stamp(end)}_c{stamp(created)}.nc"


def hour_prefix(product, t):
    return f"{product}/{t:%Y/%j/%H}/"


class Writer:
    def __init__(self, root):
        self.root = root
        self.rng = np.random.default_rng(20230307)

    def path(self, key):
        p = os.path.join(self.root, BUCKET, key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def random_object(self, key, size, mtime):
        """Incompressible bytes: nothing along the way can shortcut the transfer."""
        p = self.path(key)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 16 << 20)
                f.write(self.rng.bytes(n))
                left -= n
        os.utime(p, (mtime.timestamp(), mtime.timestamp()))
        return key

    def c02_netcdf(self, key, rows, cols, mtime, band=2):
        """A C02-like L1b file: Rad int16 (rows x cols) chunked 250x250, zlib; DQF; x/y coords."""
        import netCDF4
        p = self.path(key)
        with netCDF4.Dataset(p, "w", format="NETCDF4") as ds:
            ds.title = "ABI L1b Radiances (benchmark stand-in)"
            ds.platform_ID, ds.instrument_type, ds.scene_id = "G16", "GOES R Series ABI", "CONUS"
            ds.createDimension("y", rows)
            ds.createDimension("x", cols)
            y = ds.createVariable("y", "i2", ("y",))
            x = ds.createVariable("x", "i2", ("x",))
            y.scale_factor, y.add_offset, y.units = np.float32(-1.4e-05), np.float32(0.128226), "rad"
            x.scale_factor, x.add_offset, x.units = np.float32(1.4e-05), np.float32(-0.101346), "rad"
            y[:] = np.arange(rows, dtype=np.int16)
            x[:] = np.arange(cols, dtype=np.int16)
            rad = ds.createVariable("Rad", "i2", ("y", "x"), zlib=True, complevel=1,
                                    chunksizes=(250, 250), fill_value=np.int16(1023))
            rad.scale_factor, rad.add_offset = np.float32(0.158), np.float32(-20.3)
            rad.units, rad.long_name = "W m-2 sr-1 um-1", "ABI L1b Radiances"
            dqf = ds.createVariable("DQF", "i1", ("y", "x"), zlib=True, complevel=1, chunksizes=(250, 250))
            for name, value in [("band_id", band), ("t", 0.0), ("esun", 1631.3)]:
                ds.createVariable(name, "f8")[...] = value
            # Smooth field + 4 bits of noise: zlib gets ~2:1, as on real radiances.
            xx = np.arange(cols, dtype=np.float32)
            for r0 in range(0, rows, 250):
                yy = np.arange(r0, min(rows, r0 + 250), dtype=np.float32)[:, None]
                base = 600 + 300 * np.sin(xx / 157.0) * np.cos(yy / 211.0)
                rad[r0:r0 + len(yy), :] = (base + self.rng.integers(0, 16, size=base.shape)).astype(np.int16)
                dqf[r0:r0 + len(yy), :] = 0
        os.utime(p, (mtime.timestamp(), mtime.timestamp()))
        return key


def generate(root, profile):
    prof = PROFILES[profile]
    w = Writer(root)
    day = dt.datetime(2023, 3, 7, tzinfo=dt.timezone.utc)
    m = {"bucket": BUCKET, "profile": profile, "version": VERSION, "params": prof}

    t = day.replace(hour=14, second=20, microsecond=700000)
    m["big"] = w.random_object(hour_prefix("ABI-L1b-RadF", t) + goes_name("ABI-L1b-RadF", 2, t),
                               prof["big_mib"] << 20, t)
    t = day.replace(hour=15, second=20, microsecond=700000)
    m["ttfb"] = w.random_object(hour_prefix("ABI-L1b-RadF", t) + goes_name("ABI-L1b-RadF", 3, t),
                                prof["ttfb_mib"] << 20, t)

    # A Meso hour: two sectors, 16 bands, a scan every 30 s, as many as the profile wants.
    hour = day.replace(hour=15)
    m["hour_dir"] = hour_prefix("ABI-L1b-RadM", hour)
    n = 0
    for scan in range(120):
        for sector in ("RadM1", "RadM2"):
            for band in range(1, 17):
                if n < prof["hour"]:
                    st = hour + dt.timedelta(seconds=30 * scan + 24, microseconds=300000)
                    w.random_object(m["hour_dir"] + goes_name(f"ABI-L1b-{sector}", band, st), 2048, st)
                    n += 1

    t = day.replace(hour=17, minute=1, second=17, microsecond=400000)
    rows, cols = prof["c02"]
    m["c02"] = w.c02_netcdf(hour_prefix("ABI-L1b-RadC", t) + goes_name("ABI-L1b-RadC", 2, t), rows, cols, t)

    # Animation: C13 every 5 minutes from 18:01; the other bands exist too (small), as in a real hour.
    count, mib = prof["anim"]
    m["anim"] = []
    for i in range(count):
        st = day.replace(hour=18, minute=1, second=17, microsecond=400000) + dt.timedelta(minutes=5 * i)
        for band in range(1, 17):
            key = hour_prefix("ABI-L1b-RadC", st) + goes_name("ABI-L1b-RadC", band, st)
            w.random_object(key, int(mib * (1 << 20)) if band == 13 else 16384, st)
            if band == 13:
                m["anim"].append(key)

    # Latency profiles: C13 scans as real-shaped NetCDF (the walk reads a slice of each).
    if "anim_nc" in prof:
        count, rows, cols = prof["anim_nc"]
        for i in range(count):
            st = day.replace(hour=19, minute=1, second=17, microsecond=400000) + dt.timedelta(minutes=5 * i)
            for band in range(1, 17):
                key = hour_prefix("ABI-L1b-RadC", st) + goes_name("ABI-L1b-RadC", band, st)
                if band == 13:
                    m["anim"].append(w.c02_netcdf(key, rows, cols, st, band=13))
                else:
                    w.random_object(key, 16384, st)
    if "par" in prof:
        files, mib = prof["par"]
        m["par"] = []
        for i in range(files):
            st = day.replace(hour=20, minute=10 * (i // 16), second=20, microsecond=700000)
            key = hour_prefix("ABI-L1b-RadF", st) + goes_name("ABI-L1b-RadF", i % 16 + 1, st)
            m["par"].append(w.random_object(key, mib << 20, st))

    # 64 files read at once for the memory workload: 16 bands x 4 full-disk scans.
    m["rss"] = []
    for i in range(4 if prof["rss_kib"] else 0):
        st = day.replace(hour=16, minute=10 * i, second=20, microsecond=700000)
        for band in range(1, 17):
            key = hour_prefix("ABI-L1b-RadF", st) + goes_name("ABI-L1b-RadF", band, st)
            m["rss"].append(w.random_object(key, prof["rss_kib"] << 10, st))
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    args = ap.parse_args()
    manifest_path = os.path.join(args.data_dir, "manifest.json")
    try:
        with open(manifest_path) as f:
            old = json.load(f)
        if old.get("version") == VERSION and old.get("params") == json.loads(json.dumps(PROFILES[args.profile])):
            print(f"data: reusing {args.data_dir}", file=sys.stderr)
            return
    except (OSError, ValueError):
        pass
    print(f"data: generating the {args.profile} set in {args.data_dir}", file=sys.stderr)
    shutil.rmtree(args.data_dir, ignore_errors=True)
    os.makedirs(args.data_dir)
    manifest = generate(args.data_dir, args.profile)
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)  # last: a half-made set is never reused


if __name__ == "__main__":
    main()
