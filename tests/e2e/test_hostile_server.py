"""A hostile S3 server cannot make goesfs serve wrong bytes, hang, grow without bound,
escape the bucket, or crash.

goesfs mounts the adversary (tests/support/adversary.py) directly:
`--endpoint <adversary> --satellites 16`, so it reads bucket `noaa-goes16`.
Every file-system call that could hang runs in a child process with a timeout (a
hung FUSE request must fail the test, not the session), and every test ends by
checking that the daemon is alive and `.stats` answers (also in teardown, item 10).
Waits poll a condition; there is no sleep used as synchronisation.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from conftest import MOUNTS_KEY, GoesfsMount
from tests.fixtures.goes_fixtures import goes_name
from tests.support.adversary import (Adversary, BadContentRange, Error, Redirect, WrongRange,
                                     content, default_etag)
from tests.support.polling import process_gone, wait_for

MiB = 1 << 20
TiB = 1 << 40
HOUR = "ABI-L1b-RadC/2023/066/14/"
BUCKET = "noaa-goes16"
LISTING_XML_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<Name>{BUCKET}</Name>")


def scan_name(minute: int, second: int = 17, band: int = 13, created_lag: int = 60) -> str:
    start = datetime(2023, 3, 7, 14, minute, second, 100_000, tzinfo=timezone.utc)
    return goes_name(f"ABI-L1b-RadC-M6C{band:02d}", "G16", start, timedelta(seconds=140),
                     timedelta(seconds=created_lag))


# --- file-system calls in a child process -----------------------------------------

_CHILD = r'''
import base64, json, os, sys, time
op = json.loads(sys.argv[1])
path = bytes.fromhex(op["path"])
def data(b): return base64.b64encode(b).decode()
def one(fn):
    began = time.monotonic()
    try:
        return {"ok": True, "value": fn(), "seconds": time.monotonic() - began}
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": str(e), "seconds": time.monotonic() - began}
def pread_full(fd, offset, length):
    parts, got = [], 0
    while got < length:
        chunk = os.pread(fd, length - got, offset + got)
        if not chunk: break
        parts.append(chunk); got += len(chunk)
    return b"".join(parts)
def read_all():
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while chunk := os.read(fd, 1 << 20): parts.append(chunk)
        return data(b"".join(parts))
    finally: os.close(fd)
def preads():
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel readahead across blocks
        if op.get("drop_cache"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return [one(lambda o=o, n=n: data(pread_full(fd, o, n))) for o, n in op["reads"]]
    finally: os.close(fd)
def st(fn):
    s = fn(path)
    return {"size": s.st_size, "mode": s.st_mode, "mtime": s.st_mtime}
kind = op["op"]
fn = {"listdir": lambda: [n.hex() for n in os.listdir(path)],
      "stat": lambda: st(os.stat), "lstat": lambda: st(os.lstat),
      "read": read_all, "preads": preads,
      "readlink": lambda: os.readlink(path).hex()}[kind]
print(json.dumps(one(fn)))
'''


@dataclass
class Outcome:
    ok: bool
    value: object = None
    errno: Optional[int] = None
    error: str = ""
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def name(self) -> str:
        if self.timed_out:
            return f"no answer within {self.seconds:.1f}s (hung)"
        if self.ok:
            return "success"
        return f"{errno.errorcode.get(self.errno, self.errno)} ({self.error})"

    def data(self) -> bytes:
        assert self.ok, self.name
        return base64.b64decode(self.value)


# Children stuck in a FUSE request the daemon never answers: once the daemon has read a
# request, not even SIGKILL ends the waiting process (it sits in D state). They are reaped in
# teardown, after the daemon is unmounted or killed.
_STUCK: list[subprocess.Popen] = []


def abandon(child: subprocess.Popen) -> None:
    child.kill()
    try:
        child.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        _STUCK.append(child)


def reap_stuck() -> list[str]:
    left = []
    while _STUCK:
        child = _STUCK.pop()
        try:
            child.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            left.append(f"pid {child.pid}")
    return [f"file-system callers still stuck after the daemon went: {left}"] if left else []


def fs(op: str, path, timeout: float = 30.0, **extra) -> Outcome:
    """One file-system call in a child process; a hang becomes `timed_out`."""
    raw = os.fsencode(path)
    arg = json.dumps({"op": op, "path": raw.hex(), **extra})
    began = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, arg], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        abandon(child)
        return Outcome(False, timed_out=True, seconds=time.monotonic() - began)
    if child.returncode != 0:
        raise AssertionError(f"fs helper crashed ({child.returncode}): {err.decode(errors='replace')}")
    return Outcome(**json.loads(out))


def names(path, timeout: float = 30.0) -> list[bytes]:
    got = fs("listdir", path, timeout)
    assert got.ok, f"listing {path} failed: {got.name}"
    return [bytes.fromhex(n) for n in got.value]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def where_from(data: bytes, key: str, size: int, version: int, offset: int) -> str:
    """Say which bytes of the object `data` (read at `offset`) really are."""
    if data == content(key, version, offset, len(data)):
        return "the right bytes"
    for shift in (4096, -4096, 1 << 20, -(1 << 20)):
        if data == content(key, version, offset + shift, len(data)):
            return f"the bytes at offset {offset + shift} instead of {offset} (shift {shift:+})"
    return "bytes from nowhere in the object"


def health_problems(m: GoesfsMount) -> list[str]:
    """Item 10: the daemon is alive and `.stats` answers."""
    problems = []
    if m.pid is None:
        problems.append(f"{m.path}: no daemon pid known")
    elif process_gone(m.pid):
        problems.append(f"{m.path}: the goesfs daemon (pid {m.pid}) is gone - it crashed")
    got = fs("stat", m.path / ".stats", timeout=10)
    if not got.ok:
        problems.append(f"{m.path}: stat .stats failed: {got.name}")
    return problems


def assert_healthy(m: GoesfsMount) -> None:
    problems = health_problems(m)
    assert not problems, "; ".join(problems)


def assert_stale_or_io(got: Outcome, what: str) -> None:
    assert not got.timed_out, f"{what}: {got.name}"
    assert not got.ok, f"{what}: succeeded but must fail with ESTALE or EIO"
    assert got.errno in (errno.ESTALE, errno.EIO), f"{what}: must fail with ESTALE or EIO, got {got.name}"


# --- fixtures ----------------------------------------------------------------

@pytest.fixture
def adv():
    server = Adversary(name="adversary").start()
    yield server
    server.stop()


@pytest.fixture
def other():
    """A second listener on another port, serving different bytes for the same keys."""
    server = Adversary(name="other-origin").start()
    yield server
    server.stop()


def _unmount(m: GoesfsMount, servers: list[Adversary]) -> Optional[str]:
    """Unmount; a daemon that does not exit is reported, then (after its servers are
    stopped, which ends any request loop) killed by its pid."""
    pid = m.pid
    try:
        m.unmount()
        return None
    except AssertionError as failure:
        for s in servers:
            s.stop()
        if pid is not None and not process_gone(pid):
            try:
                wait_for(lambda: process_gone(pid), 10, "exit once the servers are gone")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: process_gone(pid), 10, f"pid {pid} to die")
        if m.is_mounted():
            subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True)
        return f"{m.path}: unmount: {failure}"


@pytest.fixture
def mounts(request, goesfs_bin, adv, other, tmp_path):
    """mount(*flags, name="m") mounts the adversary (or `endpoint=`); all are checked for
    health (item 10) and unmounted in teardown."""
    made: list[GoesfsMount] = []
    request.node.stash[MOUNTS_KEY] = made

    def make(*extra: str, name: str = "m", endpoint: Optional[str] = None) -> GoesfsMount:
        m = GoesfsMount(goesfs_bin, endpoint or adv.url, tmp_path / name, "16")
        made.append(m)
        return m.mount(*extra)

    yield make
    problems: list[str] = []
    for m in made:
        if m.is_mounted() or m.pid is not None:
            problems += health_problems(m)
    if _STUCK:  # a request loop or a hang: cut the servers first, which ends most of them
        adv.stop()
        other.stop()
    for m in made:
        if (problem := _unmount(m, [adv, other])):
            problems.append(problem)
    problems += reap_stuck()
    if problems:
        pytest.fail("after the test: " + "; ".join(problems), pytrace=False)


def mirror(m: GoesfsMount, key: str) -> Path:
    return m.path / BUCKET / key


# --- 1. Content-Range that is not the range asked for ---------------------------------

WRONG_RANGES = {
    "start": WrongRange(start_shift=4096),        # asked a-b, claims and sends (a+4096)-(b+4096)
    "start-back": WrongRange(start_shift=-4096, from_offset=MiB),  # … (a-4096)-(b-4096), from block 1
    "end": WrongRange(end_shift=-4096),           # asked a-b, claims and sends a-(b-4096)
    "total": WrongRange(total_shift=MiB),         # right bytes, but of an object 1 MiB longer
    # The bytes asked for, under a header that does not describe them:
    "total-overflow": BadContentRange("bytes {first}-{last}/99999999999999999999999"),
    "total-negative": BadContentRange("bytes {first}-{last}/-1"),
    "end-overflow": BadContentRange("bytes {first}-99999999999999999999999/{size}"),
    "reversed": BadContentRange("bytes {last}-{first}/{size}"),
    "unsatisfied": BadContentRange("bytes */{size}"),
}


@pytest.mark.parametrize("mode", ["once", "always"])
@pytest.mark.parametrize("case", WRONG_RANGES)
def test_wrong_content_range_is_never_served(mounts, adv, case, mode):
    key = HOUR + scan_name(1)
    size = 4 * MiB
    adv.put(key, size)
    behaviour = WRONG_RANGES[case]
    behaviour.times = 1 if mode == "once" else None
    adv.on_get(key, behaviour)
    flags = ("--no-prefetch", "--read-timeout", "6", "--retries", "4")
    m = mounts(*flags)
    path = mirror(m, key)
    expected = content(key, 1, 0, size)

    got = fs("read", path, timeout=30)
    if mode == "once":
        assert got.ok, f"one bad answer then good ones: the read must succeed, got {got.name}"
        data = got.data()
        assert data == expected, (f"{len(data)} bytes read; block by block: "
                                  + ", ".join(where_from(data[i:i + MiB], key, size, 1, i)
                                              for i in range(0, len(data), MiB)))
    else:
        assert not got.timed_out, got.name
        if got.ok:
            data = got.data()
            pytest.fail(f"every answer claims a range other than the one asked, yet the read "
                        f"returned {len(data)} bytes; block 0 holds "
                        f"{where_from(data[:MiB], key, size, 1, 0)}, block 1 "
                        f"{where_from(data[MiB:2 * MiB], key, size, 1, MiB)}")
        assert got.errno == errno.EIO, f"must fail with EIO, got {got.name}"
        assert got.seconds <= 6 + 2, f"failed after {got.seconds:.1f}s, past the 6 s read deadline"
        assert_healthy(m)
        # Nothing wrong was cached: against a well-behaved server, same cache dir, right bytes.
        adv.clear_behaviours()
        m.remount(*flags)
        again = fs("read", path, timeout=30)
        assert again.ok, f"the server behaves now, yet the read fails: {again.name}"
        data = again.data()
        assert data == expected, "after remount: " + ", ".join(
            where_from(data[i:i + MiB], key, size, 1, i) for i in range(0, len(data), MiB))
    assert_healthy(m)


# --- 2. the object changes between two block reads -------------------------------------

@pytest.mark.parametrize("if_match", ["honours-if-match", "ignores-if-match"])
def test_object_change_between_block_reads_never_mixes(mounts, adv, if_match):
    key = HOUR + scan_name(6)
    size = 4 * MiB
    # The object changes when a GET first asks for bytes at or past 2 MiB.
    v1 = adv.put(key, size, switch_from_offset=2 * MiB, honour_if_match=(if_match == "honours-if-match"))
    v1_etag, v2_etag = v1.etag, v1.switch_etag
    m = mounts("--no-prefetch")
    path = mirror(m, key)
    st = fs("stat", path)
    assert st.ok and st.value["size"] == size, st.name

    # One open, two preads: the 1st MiB (served as v1), then the 3rd MiB (the object is v2 by then).
    first, third = fs("preads", path, reads=[[0, MiB], [2 * MiB, MiB]], timeout=40).value
    first, third = Outcome(**first), Outcome(**third)
    assert first.ok, f"the first read (before any change) failed: {first.name}"
    assert first.data() == content(key, 1, 0, MiB), "the first MiB is not v1"

    gets = adv.gets(key)
    assert gets, "no GET reached the server"
    assert all(g.if_match in (f'"{v1_etag}"', v1_etag) for g in gets), (
        f"every ranged GET must carry If-Match: \"{v1_etag}\" (the listed ETag); the server saw "
        + ", ".join(f"{g.range} If-Match={g.if_match!r}" for g in gets))

    if third.ok:
        data = third.data()
        which = ("v2's bytes: the file now mixes v1 and v2" if data == content(key, 2, 2 * MiB, MiB)
                 else "v1's bytes?!" if data == content(key, 1, 2 * MiB, MiB) else "unknown bytes")
        pytest.fail(f"the read of the 3rd MiB after the object changed succeeded with {which}; "
                    f"it must fail with ESTALE or EIO")
    assert_stale_or_io(third, "read of the 3rd MiB after the change")

    # A fresh open (re-listing) reads all of v2, or fails; never a mix.
    again = fs("read", path, timeout=40)
    assert not again.timed_out, again.name
    if again.ok:
        data = again.data()
        blocks = []
        for i in range(0, size, MiB):
            part = data[i:i + MiB]
            blocks.append("v2" if part == content(key, 2, i, len(part))
                          else "v1" if part == content(key, 1, i, len(part)) else "?")
        if len(data) != size or blocks != ["v2"] * 4:
            # Tell the kernel's page cache apart from goesfs's own cache for the report.
            fs("preads", path, reads=[], drop_cache=True)
            dropped = fs("read", path, timeout=40)
            after = (f"{dropped.name}, all v2: {dropped.data() == content(key, 2, 0, size)}"
                     if dropped.ok else dropped.name)
            pytest.fail(f"a fresh open read {len(data)} bytes whose blocks are {blocks}: never mixed, "
                        f"all v2 or an error (after POSIX_FADV_DONTNEED of the kernel's page cache "
                        f"the read gives: {after})")
    assert_healthy(m)


# --- 3./4./5. listing pages that lie ------------------------------------------------

def contents_xml(prefix: str, count: int, pad: int = 100) -> str:
    return "".join(f"<Contents><Key>{prefix}f-{i:06d}-{'x' * pad}.nc</Key>"
                   f"<LastModified>2023-03-07T14:05:00.000Z</LastModified>"
                   f"<ETag>&quot;{i:032x}&quot;</ETag><Size>{1000 + i}</Size>"
                   f"<StorageClass>STANDARD</StorageClass></Contents>" for i in range(count))


def page_xml(prefix: str, body: str, truncated: bool, token: Optional[str]) -> bytes:
    return (LISTING_XML_HEAD + f"<Prefix>{prefix}</Prefix><Delimiter>/</Delimiter>"
            f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            + (f"<NextContinuationToken>{token}</NextContinuationToken>" if token else "")
            + body + "</ListBucketResult>").encode()


@pytest.mark.parametrize("token", ["same-token", "new-token-each-page"])
def test_repeating_continuation_token_fails_in_bounded_time_and_memory(mounts, adv, token):
    loop, fine = "hostile/loop/", "hostile/fine/"
    if token == "same-token":  # the same page, the same token, forever
        adv.set_listing(loop, page_xml(loop, contents_xml(loop, 1000), truncated=True, token="again-and-again"))
    else:  # the same keys again and again, but under a new token each time: never a repeat to spot
        head, _, tail = page_xml(loop, contents_xml(loop, 1000), truncated=True, token="@@").partition(b"@@")
        adv.set_listing(loop, lambda query, call: head + b"t%d" % call + tail)
    adv.put(loop + "placeholder", 1)  # so that hostile/ lists loop/ as a folder
    adv.put(fine + "ok.bin", 1234)
    m = mounts("--read-timeout", "5")
    assert sorted(names(m.path / BUCKET / "hostile")) == [b"fine", b"loop"]
    baseline = rss_kib(m.pid)

    arg = json.dumps({"op": "listdir", "path": os.fsencode(m.path / BUCKET / loop).hex()})
    began = time.monotonic()
    ls = subprocess.Popen([sys.executable, "-c", _CHILD, arg], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak, other_folder = baseline, None
    try:
        while ls.poll() is None and time.monotonic() - began < 5 + 10:
            peak = max(peak, rss_kib(m.pid))
            if other_folder is None and adv.listing_calls(loop) >= 2:
                other_folder = fs("listdir", m.path / BUCKET / fine, timeout=10)  # meanwhile
            try:
                ls.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        elapsed = time.monotonic() - began
        hung = ls.poll() is None
    finally:
        out = b""
        if ls.poll() is None:
            abandon(ls)
        else:
            out, _ = ls.communicate()
    pages = adv.listing_calls(loop)
    grown_mb = (peak - baseline) / 1024
    assert not hung, (f"ls of a folder whose listing never ends ({token}) still runs after "
                      f"{elapsed:.0f}s (5 s read timeout + 10 s): {pages} pages fetched, "
                      f"daemon RSS +{grown_mb:.0f} MB")
    result = Outcome(**json.loads(out))
    assert not result.ok and result.errno == errno.EIO, f"ls must fail with EIO, got {result.name}"
    assert grown_mb < 100, f"daemon RSS grew by {grown_mb:.0f} MB over {pages} repeated pages"
    if other_folder is not None:
        assert other_folder.ok and other_folder.value == [b"ok.bin".hex()], \
            f"another folder, listed meanwhile: {other_folder.name} {other_folder.value}"
    assert sorted(names(m.path / BUCKET / fine)) == [b"ok.bin"]
    assert_healthy(m)
    m.unmount()
    assert not m.is_mounted(), "unmount after the loop did not succeed"


def test_truncated_listing_without_token_is_not_taken_as_complete(mounts, adv):
    prefix = "hostile/truncated/"
    adv.set_listing(prefix, page_xml(prefix, contents_xml(prefix, 3), truncated=True, token=None))
    adv.put(prefix + "placeholder", 1)  # so that hostile/ lists truncated/ as a folder
    m = mounts("--read-timeout", "5")
    got = fs("listdir", m.path / BUCKET / prefix, timeout=20)
    assert not got.timed_out, got.name
    assert not got.ok, (f"IsTruncated=true without NextContinuationToken was taken as a complete "
                        f"listing of {len(got.value)} entries; it must fail with EIO")
    assert got.errno == errno.EIO, f"must fail with EIO, got {got.name}"
    assert_healthy(m)


def test_single_page_of_5000_keys_over_1_mib_lists_completely(mounts, adv):
    prefix = "hostile/big/"
    expected = {f"{scan_name(1)[:-3]}-{i:05d}-{'y' * 120}.nc".encode() for i in range(5000)}
    for name in expected:
        adv.put(prefix + name.decode(), 100)
    adv.set_page_size(prefix, 5000)
    m = mounts()
    got = names(m.path / BUCKET / prefix, timeout=30)
    pages = adv.listings(prefix)
    assert pages and all(r.status == 200 for r in pages), pages
    assert max(r.bytes_sent for r in pages) > MiB, "the test needs a page over 1 MiB"
    assert len(got) == 5000 and set(got) == expected, (
        f"{len(got)} names listed ({len(set(got) & expected)} of the 5000 expected) from one "
        f"{max(r.bytes_sent for r in pages)}-byte page")
    assert_healthy(m)


# --- 6. redirects ----------------------------------------------------------------

RETRIES = 3
MAX_GETS = 3 * RETRIES + 3


def single_block_object(adv: Adversary, minute: int) -> tuple[str, int]:
    key = HOUR + scan_name(minute)
    adv.put(key, 300_000)
    return key, 300_000


@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirect_to_itself_fails_after_few_requests(mounts, adv, status):
    key, _ = single_block_object(adv, 11)
    adv.on_get(key, Redirect(status, "self"))
    m = mounts("--no-prefetch", "--retries", str(RETRIES), "--read-timeout", "10")
    got = fs("read", mirror(m, key), timeout=30)
    adv.wait_idle()
    gets = adv.gets(key)
    assert not got.timed_out, f"{got.name}; {len(gets)} GETs so far"
    assert not got.ok and got.errno == errno.EIO, f"must fail with EIO, got {got.name}"
    assert len(gets) <= MAX_GETS, (f"{len(gets)} GETs of a self-redirecting key (at most "
                                   f"3 x --retries + 3 = {MAX_GETS}), in {got.seconds:.1f}s")
    assert_healthy(m)


def cross_origin(other: Adversary, case: str) -> str:
    return {"other-port": other.url,
            "other-host": f"http://localhost:{other.port}",
            "scheme-change": f"https://127.0.0.1:{other.port}"}[case]


@pytest.mark.parametrize("case", ["other-port", "other-host", "scheme-change"])
def test_redirect_to_another_origin_is_not_followed(mounts, adv, other, case):
    key, size = single_block_object(adv, 16)
    other.put(key, size, version=99)  # different bytes there, and a different ETag
    adv.on_get(key, Redirect(302 if case != "scheme-change" else 301, cross_origin(other, case)))
    m = mounts("--no-prefetch", "--retries", str(RETRIES), "--read-timeout", "10")
    got = fs("read", mirror(m, key), timeout=30)
    adv.wait_idle()
    assert other.connection_count == 0 and not other.records(), (
        f"goesfs followed a redirect to {cross_origin(other, case)}: that listener got "
        f"{other.connection_count} connections, {other.records()}; the read gave {got.name}")
    assert not got.timed_out, got.name
    assert not got.ok and got.errno == errno.EIO, f"must fail with EIO, got {got.name}"
    assert len(adv.gets(key)) <= MAX_GETS, adv.gets(key)
    assert_healthy(m)


@pytest.mark.parametrize("times", ["once", "forever"])
def test_same_origin_redirects_are_followed_at_most_a_few_times(mounts, adv, times):
    key, size = single_block_object(adv, 21)
    adv.on_get(key, Redirect(307, "chain", times=1 if times == "once" else None))  # ?hop=N, new each time
    m = mounts("--no-prefetch", "--retries", str(RETRIES), "--read-timeout", "10")
    got = fs("read", mirror(m, key), timeout=30)
    adv.wait_idle()
    gets = adv.gets(key)
    assert not got.timed_out, f"{got.name}; {len(gets)} GETs so far"
    assert len(gets) <= MAX_GETS, (f"{len(gets)} GETs for one read through a same-origin redirect "
                                   f"chain (at most {MAX_GETS}), in {got.seconds:.1f}s")
    if times == "forever":
        assert not got.ok and got.errno == errno.EIO, f"must fail with EIO, got {got.name}"
    elif got.ok:  # following one same-origin redirect is allowed; then the bytes are right
        assert got.data() == content(key, 1, 0, size), "wrong bytes after one same-origin redirect"
    else:
        assert got.errno == errno.EIO, f"a refused redirect must fail with EIO, got {got.name}"
    assert_healthy(m)


# --- 7. 503 SlowDown -------------------------------------------------------------

def test_slowdown_five_times_then_success_reads_right_bytes(mounts, adv):
    key, size = single_block_object(adv, 26)
    adv.on_get(key, Error(503, "SlowDown", times=5))
    m = mounts("--no-prefetch")  # default --retries and --read-timeout
    got = fs("read", mirror(m, key), timeout=40)
    gets = adv.gets(key)
    assert got.ok, (f"5 x 503 SlowDown then success must read with the default retries, got "
                    f"{got.name} after {len(gets)} GETs: {[g.status for g in gets]}")
    assert got.data() == content(key, 1, 0, size)
    statuses = [g.status for g in gets]
    assert statuses[:6] == [503] * 5 + [206] and set(statuses[6:]) <= {206}, gets
    assert_healthy(m)


def test_slowdown_forever_backs_off_then_fails_within_the_deadline(mounts, adv):
    key, _ = single_block_object(adv, 31)
    adv.on_get(key, Error(503, "SlowDown"))
    m = mounts("--no-prefetch", "--read-timeout", "8")
    got = fs("read", mirror(m, key), timeout=40)
    adv.wait_idle()
    gets = adv.gets(key)
    assert not got.timed_out, got.name
    assert not got.ok and got.errno in (errno.EIO, errno.ETIMEDOUT), f"must fail, got {got.name}"
    assert got.seconds <= 8 + 5, f"failed after {got.seconds:.1f}s (read timeout 8 s + 5)"
    assert got.seconds >= 2.9, (f"gave up after {got.seconds:.1f}s and {len(gets)} GETs: a throttled "
                                f"server must be backed off from, not abandoned at once")
    assert len(gets) <= 15, f"{len(gets)} GETs against a server saying SlowDown (at most 15)"
    assert_healthy(m)


# --- 8. poisoned sizes and dates -------------------------------------------------------

FIVE_TIB = 5 * TiB
INT64_MAX = (1 << 63) - 1
VALUES = "hostile/values/"
GOOD_VALUES = {"good-small.bin": 1000, "good-5tib.bin": FIVE_TIB}
BAD_SIZES = {
    "size-int64-max.bin": str(INT64_MAX),
    "size-int64-max-minus-1.bin": str(INT64_MAX - 1),
    "size-int64-max-minus-1mib.bin": str((1 << 63) - MiB),
    "size-over-5tib.bin": str(FIVE_TIB + 1),
    "size-negative.bin": "-1",
}
BAD_DATES = {"lastmod-year-1e15.bin": "1000000000000000-01-01T00:00:00.000Z"}


def poison_values(adv: Adversary) -> None:
    for name, size in GOOD_VALUES.items():
        adv.put(VALUES + name, size)
    for name, size in BAD_SIZES.items():
        adv.put(VALUES + name, abs(int(size)), listed_size=size)
    for name, when in BAD_DATES.items():
        adv.put(VALUES + name, 1000, last_modified=when)


def check_values_folder(m: GoesfsMount) -> None:
    folder = m.path / BUCKET / VALUES
    ls = subprocess.run(["ls", "-l", str(folder)], capture_output=True, timeout=30)
    assert ls.returncode == 0, (f"ls -l of a folder with poisoned <Size>/<LastModified> exited "
                                f"{ls.returncode}: {ls.stderr.decode(errors='replace')}"
                                f"; daemon alive: {not process_gone(m.pid)}")
    listed = set(names(folder))
    assert listed == {n.encode() for n in GOOD_VALUES}, (
        f"listed {sorted(listed)}; want exactly the good entries {sorted(GOOD_VALUES)}")
    for name in [*BAD_SIZES, *BAD_DATES]:
        got = fs("stat", folder / name, timeout=10)
        assert not got.ok and got.errno == errno.ENOENT, f"stat {name}: want ENOENT, got {got.name} {got.value}"
    big = fs("stat", folder / "good-5tib.bin")
    assert big.ok and big.value["size"] == FIVE_TIB, f"stat of the 5 TiB object: {big.name} {big.value}"
    [tail] = fs("preads", folder / "good-5tib.bin", reads=[[FIVE_TIB - 10, 10]]).value
    tail = Outcome(**tail)
    assert tail.ok, f"pread of the last 10 bytes of a 5 TiB object: {tail.name}"
    assert tail.data() == content(VALUES + "good-5tib.bin", 1, FIVE_TIB - 10, 10), tail.data()


def test_poisoned_listing_values_hide_only_the_bad_entries(mounts, adv):
    poison_values(adv)
    m = mounts("--no-prefetch", "--read-timeout", "10")
    check_values_folder(m)
    assert_healthy(m)
    # The listing persists in the cache: the remounted daemon reads it back and must survive too.
    m.remount("--no-prefetch", "--read-timeout", "10")
    check_values_folder(m)
    assert_healthy(m)


# --- 9. hostile names ---------------------------------------------------------------

GOOD_SCAN = HOUR + scan_name(1)
GOOD_PLAIN = HOUR + "not-a-goes-name.txt"
ESCAPE_KEY = HOUR + "esc-\x1b[2J\x1b]0;pwned\x07-name.nc"
LONG_KEY = HOUR + "L" * 300 + ".nc"
ESCAPED_SCAN = scan_name(46)  # a GOES name: the friendly view would link it
DOT_KEYS = [HOUR + "../../ESCAPED/" + ESCAPED_SCAN, HOUR + "../" + scan_name(51), HOUR + "./" + scan_name(56)]
NON_UTF8 = {HOUR.encode() + b"nonutf8-\xff.nc": 2001, HOUR.encode() + b"nonutf8-\xfe.nc": 2002}
RAW_NAME_ENTRIES = [
    *(f"<Contents><Key>{HOUR}nul{esc}byte-{i}.nc</Key><LastModified>2023-03-07T14:05:00.000Z"
      f"</LastModified><ETag>&quot;{i:032x}&quot;</ETag><Size>10</Size></Contents>"
      for i, esc in enumerate(["&#0;", "&#x0;", "%00"])),
    *(f"<Contents><Key>{key}</Key><LastModified>2023-03-07T14:05:00.000Z</LastModified>"
      f"<ETag>&quot;{default_etag(key, 1)}&quot;</ETag><Size>5000</Size></Contents>" for key in DOT_KEYS),
    *(f"<CommonPrefixes><Prefix>{HOUR}{p}</Prefix></CommonPrefixes>" for p in ["./", "../", "a/../"]),
]


def hostile_names(adv: Adversary) -> None:
    adv.put(GOOD_SCAN, 70_000)
    adv.put(GOOD_PLAIN, 321)
    adv.put(ESCAPE_KEY, 4321)
    adv.put(LONG_KEY, 1000)
    for key in DOT_KEYS:
        adv.put(key, 5000)  # also as objects: a GET of them would be answered (and logged)
    adv.put("ABI-L1b-RadC/2023/ESCAPED/" + ESCAPED_SCAN, 5000)  # where "14/../../ESCAPED" points
    for key, size in NON_UTF8.items():
        adv.put(key, size)
    for fragment in RAW_NAME_ENTRIES:
        adv.add_raw_entry(HOUR, fragment)


def raw_readdir(folder: Path) -> list[bytes]:
    """All names readdir returns, "." and ".." included (os.listdir hides those)."""
    ls = subprocess.run(["ls", "-a1", "-N", "--show-control-chars", str(folder)], capture_output=True, timeout=30)
    assert ls.returncode == 0, f"ls -a of the folder: {ls.stderr.decode(errors='replace')}"
    return ls.stdout.split(b"\n")[:-1]


def test_hostile_names_folder_lists_its_good_entries_and_only_real_names(mounts, adv):
    hostile_names(adv)
    m = mounts("--no-prefetch", "--read-timeout", "10")
    folder = m.path / BUCKET / HOUR
    listed = names(folder)
    for key in (GOOD_SCAN, GOOD_PLAIN):
        assert as_name(key) in listed, f"good entry {as_name(key)!r} missing from {sorted(listed)}"
    dupes = sorted({n for n in listed if listed.count(n) > 1})
    assert not dupes, f"names listed more than once: {dupes}"
    too_long = [n[:20] + b"..." for n in listed if len(n) > 255]
    assert not too_long, f"names over 255 bytes listed: {too_long}"
    phantoms = []
    for name in listed:
        got = fs("lstat", folder / os.fsdecode(name), timeout=10)
        if not got.ok:
            phantoms.append(f"{name!r}: {got.name}")
    assert not phantoms, f"listed names that cannot be looked up: {phantoms}"
    everything = raw_readdir(folder)
    assert everything.count(b".") == 1 and everything.count(b"..") == 1, (
        f"readdir gave {everything.count(b'.')} '.' and {everything.count(b'..')} '..' entries")
    got = fs("read", folder / os.fsdecode(as_name(GOOD_SCAN)))
    assert got.ok and got.data() == content(GOOD_SCAN, 1, 0, 70_000), f"reading the good scan: {got.name}"
    assert_healthy(m)


def as_name(key) -> bytes:
    return key.encode().rsplit(b"/", 1)[-1] if isinstance(key, str) else key.rsplit(b"/", 1)[-1]


def test_hostile_names_never_take_a_request_outside_the_bucket_path(mounts, adv):
    hostile_names(adv)
    m = mounts("--no-prefetch", "--read-timeout", "10")
    folder = m.path / BUCKET / HOUR
    touched = []
    # Walk the mirror folder (and one level below), the friendly hour, and names typed by hand.
    for name in names(folder):
        path = folder / os.fsdecode(name)
        st = fs("lstat", path, timeout=10)
        touched.append((path, st.name))
        if st.ok and (st.value["mode"] & 0o170000) == 0o040000:
            sub = fs("listdir", path, timeout=15)
            for child in ([bytes.fromhex(n) for n in sub.value] if sub.ok else []):
                touched.append((path / os.fsdecode(child), fs("lstat", path / os.fsdecode(child), timeout=10).name))
        elif st.ok:
            fs("preads", path, reads=[[0, 1]], timeout=15)
    friendly = m.path / "goes16" / "RadC" / "C13" / "2023-03-07" / "14"
    links = fs("listdir", friendly, timeout=15)
    assert links.ok, f"the friendly hour folder: {links.name}"
    outside = []
    for link in (bytes.fromhex(n) for n in links.value):
        path = friendly / os.fsdecode(link)
        target = fs("readlink", path, timeout=10)
        if target.ok:
            resolved = os.path.normpath(os.path.join(friendly, os.fsdecode(bytes.fromhex(target.value))))
            if not resolved.startswith(str(m.path / BUCKET / HOUR)):
                outside.append(f"{os.fsdecode(link)} -> {os.fsdecode(bytes.fromhex(target.value))}")
        fs("preads", path, reads=[[0, 1]], timeout=15)
    for typed in ["..%2F..", "ESCAPED", "a", "a/..", "."]:
        fs("stat", str(folder) + "/" + typed, timeout=10)
    adv.wait_idle()
    bad = []
    for r in adv.records():
        segments = r.path.split(b"/")
        prefix = r.query.get("prefix", "")
        if not (r.path == f"/{BUCKET}".encode() or r.path.startswith(f"/{BUCKET}/".encode())) \
                or b"ESCAPED" in r.path or b".." in segments or b"." in segments \
                or "ESCAPED" in prefix or any(s in ("..", ".") for s in prefix.split("/")):
            bad.append(r.target)
    assert not bad and not outside, (f"requests outside the bucket path or through '.'/'..': {bad}; "
                                     f"friendly links pointing outside the hour folder: {outside}")
    assert_healthy(m)


def test_non_utf8_keys_never_collapse_into_one_name(mounts, adv):
    hostile_names(adv)
    m = mounts("--no-prefetch", "--read-timeout", "10")
    folder = m.path / BUCKET / HOUR
    listed = names(folder)
    hour_listings = adv.listings(HOUR)
    assert hour_listings and all(r.query.get("encoding-type") == "url" for r in hour_listings), (
        f"listings must ask with encoding-type=url: {[r.target for r in hour_listings]}")
    odd = [n for n in listed if n.startswith(b"nonutf8-")]
    assert len(odd) in (0, 2) and len(set(odd)) == len(odd), (
        f"two keys differing only in invalid UTF-8 bytes became the names {odd}")
    wanted = {as_name(k): content(k, 1, 0, size) for k, size in NON_UTF8.items()}
    read = {}
    for name in odd:
        got = fs("read", folder / os.fsdecode(name))
        if got.ok:
            data = got.data()
            assert data in wanted.values(), f"{name!r} read bytes of neither key"
            if name in wanted:  # the name is the raw key: then its own bytes
                assert data == wanted[name], f"{name!r} read the other key's bytes"
            read[name] = data
    assert len(set(read.values())) == len(read), f"{sorted(read)} read the same object's bytes"
    assert_healthy(m)


def test_terminal_escape_in_a_key_never_reaches_stats(mounts, adv):
    hostile_names(adv)
    adv.on_get(ESCAPE_KEY, Error(500, "InternalError", times=1))  # so it is in the errors, too
    m = mounts("--no-prefetch", "--read-timeout", "10")
    folder = m.path / BUCKET / HOUR
    escaped = [n for n in names(folder) if n.startswith(b"esc-")]
    for name in escaped:
        got = fs("read", folder / os.fsdecode(name))
        if got.ok:
            assert got.data() == content(ESCAPE_KEY, 1, 0, 4321), f"{name!r}: wrong bytes"
    with open(m.path / ".stats", "rb") as f:
        report = f.read()
    for byte, what in ((b"\x1b", "ESC"), (b"\x07", "BEL")):
        at = report.find(byte)
        assert at < 0, (f"raw {what} in .stats (reading {escaped!r}): "
                        f"{report[max(0, at - 60):at + 20]!r}")
    assert_healthy(m)
