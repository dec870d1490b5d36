"""Looking at a goesfs cache directory from outside, and killing its daemon.

The layout (see docs/ARCHITECTURE.md): `<cache>/index.sqlite` (WAL) and sparse data
files `<cache>/objects/<h[:2]>/<h>.data`, h = SHA-256 of "bucket\\0key" in hex, block i at i MiB.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from tests.support.polling import process_gone, wait_for

MiB = 1024 * 1024


def data_file(cache_dir: Path, bucket: str, key: str) -> Path:
    h = hashlib.sha256(bucket.encode() + b"\0" + key.encode()).hexdigest()
    return cache_dir / "objects" / h[:2] / f"{h}.data"


def _blocks(conn: sqlite3.Connection, bucket: str, key: str) -> set[int]:
    rows = conn.execute("SELECT b.block FROM blocks b JOIN objects o ON o.id = b.object_id "
                        "WHERE o.bucket = ? AND o.key = ?", (bucket, key)).fetchall()
    return {r[0] for r in rows}


def live_blocks(cache_dir: Path, bucket: str, key: str) -> set[int]:
    """Blocks the index records for an object, read while the daemon runs (read-only,
    a fresh short-lived connection so we never hold a snapshot the daemon waits on)."""
    uri = f"file:{cache_dir / 'index.sqlite'}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            return _blocks(conn, bucket, key)
    except sqlite3.OperationalError:
        return set()  # index not created yet, or tables not yet there


def live_cached_bytes(cache_dir: Path) -> int:
    """What the index says the cache holds: the sum of its blocks' lengths."""
    uri = f"file:{cache_dir / 'index.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        return conn.execute("SELECT COALESCE(SUM(length), 0) FROM blocks").fetchone()[0]


def live_cached_by_object(cache_dir: Path) -> dict[tuple[str, str], int]:
    """Bytes the index records per (bucket, key), in one snapshot."""
    uri = f"file:{cache_dir / 'index.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        rows = conn.execute("SELECT o.bucket, o.key, SUM(b.length) FROM blocks b "
                            "JOIN objects o ON o.id = b.object_id GROUP BY o.id").fetchall()
    return {(bucket, key): n for bucket, key, n in rows}


def open_files_under(root: Path, pids: list[int]) -> set[str]:
    """Paths below `root` that these processes hold open right now (from /proc/PID/fd)."""
    prefix, found = str(root) + "/", set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith(prefix):
                found.add(target[len(prefix):])
    return found


def disk_bytes(cache_dir: Path) -> int:
    """Bytes the data files really occupy on disk (sparse holes don't count), like `du`."""
    total = 0
    for root, _, files in os.walk(cache_dir / "objects"):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass  # evicted while we walked
    return total


def snapshot_blocks(cache_dir: Path, bucket: str, key: str) -> set[int]:
    """Blocks recorded in an index nobody has open (after kill -9 or unmount).

    Copies index + WAL aside and opens the copy read-write: SQLite then recovers the
    WAL itself instead of failing read-only, and the real files stay untouched."""
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            src = cache_dir / f"index.sqlite{suffix}"
            if src.exists():
                shutil.copy(src, Path(tmp) / f"index.sqlite{suffix}")
        with closing(sqlite3.connect(Path(tmp) / "index.sqlite")) as conn:
            return _blocks(conn, bucket, key)


def daemon_pid(mountpoint: Path) -> int:
    """The pid of the `goesfs ... --foreground` process serving `mountpoint`."""
    wanted = str(mountpoint).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in argv and b"--foreground" in argv:
            return int(entry)
    raise AssertionError(f"no goesfs daemon found for {mountpoint}")


def kill9(pid: int, timeout: float = 10) -> None:
    """SIGKILL and wait until the process is gone (it is not our child: poll /proc)."""
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: process_gone(pid), timeout,
             f"pid {pid} still alive after SIGKILL")
