#!/usr/bin/env python3
"""xarray open + a 100x100 slice of Rad from the middle of one chunk; prints JSON.

--count reads through a Python file object that counts bytes: run on the local
file, that is what the library itself reads (the "bytes the library reads").
usage: xslice.py PATH... [--count] [--size N] [--step SECONDS]
Several paths: a walk (each opened, sliced, closed in turn, SECONDS of idle after each).
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
    args, count = sys.argv[1:], "--count" in sys.argv[1:]
    size, step = 100, 0.0
    paths = []
    i = 0
    while i < len(args):
        if args[i] == "--size":
            size, i = int(args[i + 1]), i + 2
        elif args[i] == "--step":
            step, i = float(args[i + 1]), i + 2
        else:
            if args[i] != "--count":
                paths.append(args[i])
            i += 1
    t0 = time.perf_counter()
    total_bytes, means = 0, []
    for path in paths:
        target = Counting(open(path, "rb", buffering=0)) if count else path
        ds = xr.open_dataset(target, engine="h5netcdf")
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        y0, x0 = (ny // 2) // 250 * 250 + 50, (nx // 2) // 250 * 250 + 50
        y0, x0 = min(y0, ny - size), min(x0, nx - size)
        values = ds["Rad"][y0:y0 + size, x0:x0 + size].values
        assert values.shape == (size, size), values.shape
        ds.close()
        means.append(float(values.mean()))
        if count:
            total_bytes += target.bytes
        if step:  # the "render" step between frames (a walk over several scans)
            time.sleep(step)
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "mean": means[0], "means": means}
    if count:
        out["bytes"] = total_bytes
    print(json.dumps(out))


if __name__ == "__main__":
    main()
