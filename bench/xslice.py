#!/usr/bin/env python3
"""xarray open + a 100x100 slice of Rad from the middle of one chunk; prints JSON.

--count reads through a Python file object that counts bytes: run on the local
file, that is what the library itself reads (the "bytes the library reads").
usage: xslice.py PATH [--count]
"""
import io
import json
import sys
import time

import xarray as xr


class Counting(io.RawIOBase):
    def __init__(self, f):
        self.f, self.bytes = f, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, off, whence=0):
        return self.f.seek(off, whence)

    def tell(self):
        return self.f.tell()

    def readinto(self, b):
        n = self.f.readinto(b)
        self.bytes += n or 0
        return n


def main():
    path, count = sys.argv[1], "--count" in sys.argv[2:]
    target = Counting(open(path, "rb", buffering=0)) if count else path
    t0 = time.perf_counter()
    ds = xr.open_dataset(target, engine="h5netcdf")
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    y0, x0 = (ny // 2) // 250 * 250 + 50, (nx // 2) // 250 * 250 + 50
    values = ds["Rad"][y0:y0 + 100, x0:x0 + 100].values
    seconds = time.perf_counter() - t0
    assert values.shape == (100, 100), values.shape
    ds.close()
    out = {"seconds": seconds, "mean": float(values.mean())}
    if count:
        out["bytes"] = target.bytes
    print(json.dumps(out))


if __name__ == "__main__":
    main()
