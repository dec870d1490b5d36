"""Random-range readers for the cache stress test, usable as threads or as a process.

Each read: open a random object, drop the kernel's cached pages for the range (files
open with keep_cache, so without this the page cache would soon answer everything and
goesfs would sit idle), pread a random range, compare with the recomputed source bytes.

As a process: `python -m tests.support.random_reader MOUNT SECONDS SEED` prints one JSON
line {"bytes": .., "reads": .., "errors": [..]} for the objects of the cache tests.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_READ = 512 * 1024


@dataclass
class Tally:
    bytes: int = 0
    reads: int = 0
    errors: list[str] = field(default_factory=list)  # mismatches and OSErrors, described


def read_randomly(mount: Path, sources: dict[tuple[str, str], bytes], until: float,
                  seed: int, tally: Tally) -> Tally:
    rng = random.Random(seed)
    names = sorted(sources)
    while time.monotonic() < until and len(tally.errors) < 10:
        bucket, key = rng.choice(names)
        data = sources[(bucket, key)]
        offset = rng.randrange(len(data))
        length = rng.randint(1, MAX_READ)
        try:
            fd = os.open(mount / bucket / key, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
                got = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        except OSError as error:
            tally.errors.append(f"{key} @{offset}+{length}: {error}")
            continue
        want = data[offset:offset + length]
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            tally.errors.append(f"{key} @{offset}+{length}: got {len(got)} bytes, want {len(want)}, "
                                f"first difference at byte {offset + first}")
        tally.bytes += len(got)
        tally.reads += 1
    return tally


def stress_sources() -> dict[tuple[str, str], bytes]:
    from tests.fixtures.goes_fixtures import stress_objects
    return {(o.bucket, o.key): o.data for o in stress_objects()}


def main() -> None:
    mount, seconds, seed = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    sources = stress_sources()  # computed before the clock starts
    print("ready", flush=True)  # the test starts the clock for everyone after this line
    sys.stdin.readline()
    tally = read_randomly(mount, sources, time.monotonic() + seconds, seed, Tally())
    print(json.dumps(tally.__dict__), flush=True)


if __name__ == "__main__":
    main()
