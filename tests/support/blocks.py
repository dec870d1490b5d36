"""goesfs's cache blocks as the tests see them on the wire and in the index.

The cache records 16 KiB blocks (CacheIndex.blockSize); a GET asks for a run of whole blocks
(one block up to 8 MiB: Policies.maxRequestBytes), so every Range header starts on a block edge
and ends on one or at the object's end.
"""

from __future__ import annotations

import re

BLOCK = 16 * 1024
MAX_REQUEST = 8 * 1024 * 1024


def block_count(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK


def blocks_in(range_header: str | None, size: int) -> list[int]:
    """The blocks one ranged GET covers; fails unless it is a run of whole blocks."""
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", range_header or "")
    assert m, f"not a closed byte range: {range_header!r}"
    first, last = int(m[1]), int(m[2])
    assert first % BLOCK == 0, f"range starts inside a block: {range_header}"
    assert (last + 1) % BLOCK == 0 or last == size - 1, f"range ends inside a block: {range_header}"
    assert last - first + 1 <= MAX_REQUEST, f"range over {MAX_REQUEST} bytes: {range_header}"
    return list(range(first // BLOCK, last // BLOCK + 1))


def blocks_of_gets(gets, size: int) -> list[int]:
    """Blocks the GETs asked for, in order, repeats kept."""
    return [b for r in gets for b in blocks_in(r.range, size)]


def blocks_for_bytes(start: int, end: int) -> set[int]:
    """The blocks holding bytes [start, end)."""
    return set(range(start // BLOCK, (end - 1) // BLOCK + 1)) if end > start else set()
