"""Issue 5: diagnostics you can cat — .stats, .stats.json, .diagnostics, `goesfs stats --watch`,
`goesfs diagnose`.

Faults come from the recording proxy, so the counts goesfs reports are checked against
what really went over the wire. Slow downloads come from `--max-bandwidth` (goesfs's own
throttle), which keeps a download in flight long enough to watch. Waits poll with a deadline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixtures.goes_fixtures import MiB, RADC_HOUR, fixture_objects, stress_objects
from tests.support.polling import wait_for
from tests.support.proxy import Delay, DropAfter, Respond
from tests.support.s3server import free_port
from tests.support.stats_report import (JSON_COUNT_NAMES, check_consistent, counts, field,
                                        in_progress, numbered)
from tests.support.terminal import run_in_pty

ROOT = Path(__file__).resolve().parents[2]
G16 = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)
       and o.kind == "random"]
by_size = {o.size: o for o in G16}
OK_A, OK_B = by_size[123_457], by_size[1]  # one block each, read without faults
NOT_FOUND = by_size[4097]                  # answered 404
FLAKY = by_size[65_536]                    # 503 twice, then fine
CUT = by_size[MiB + 1]                     # body cut after 300 kB once: a network error
SLOW = sorted(stress_objects(), key=lambda o: -o.size)[:4]  # 2-3 MiB noaa-goes19 objects
THROTTLE = ("--max-bandwidth", "300K")     # ~3 s per 1 MiB block: downloads stay visible
ESC = "\x1b"


def path_of(mount, obj) -> Path:
    return mount.path / obj.bucket / obj.key


def read_text(path: Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def stats_json(mount) -> dict:
    return json.loads(read_text(mount.path / ".stats.json"))


def read_whole(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@contextmanager
def reading_in_background(*paths: Path):
    """Read files one after another in a thread, a block at a time. On exit the reader
    stops after its current block and is joined, so the test does not wait for whole
    throttled files and the mount is not busy at teardown, even when the test fails."""
    stop = threading.Event()

    def run():
        for p in paths:
            try:
                with open(p, "rb", buffering=0) as f:
                    while not stop.is_set() and f.read(MiB):
                        pass
            except OSError:
                pass  # the tests look at .stats, not at these bytes
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def downloading(mount) -> list[dict]:
    return stats_json(mount)["in_progress"]


def diagnostics_done(mount) -> str | None:
    text = read_text(mount.path / ".diagnostics")
    return text if "Verdict:" in text else None


def source_block(report: str, url: str) -> str:
    """The lines of one numbered source in a diagnostics report."""
    m = re.search(rf"^\d+\. {re.escape(url)}\n((?:   .*\n?)+)", report, re.MULTILINE)
    assert m, f"no section for {url} in:\n{report}"
    return m[1]


TIMINGS = re.compile(r"HTTP (\d+): dns [\d.]+ ms, connect [\d.]+ ms, tls [\d.]+ ms, "
                     r"first byte [\d.]+ ms, total [\d.]+ ms")


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


# --- 1. a scripted mix of outcomes: exact counts, text and JSON agree ---------

def test_stats_counts_match_the_proxy_log(mount_factory, proxy):
    # A scripted sequence of requests: no prefetch of the next scans mixing in its own.
    mount = mount_factory("m", "16,18", "--no-prefetch")
    for o in (OK_A, OK_B, NOT_FOUND, FLAKY, CUT):
        os.stat(path_of(mount, o))  # listings first, without faults
    proxy.reset()
    proxy.add_fault(NOT_FOUND.key, Respond(404, "NoSuchKey"), times=None)
    proxy.add_fault(FLAKY.key, Respond(503, "SlowDown"), times=2)
    # The first request of the file (from offset 0; the header region, 64 KiB at least) is cut
    # after 10 kB: resumed from there.
    proxy.add_fault(lambda r: r.path.endswith(CUT.key) and (r.range or "").startswith("bytes=0-"),
                    DropAfter(10_000), times=1)

    assert read_whole(path_of(mount, OK_A)) == OK_A.data
    with pytest.raises(FileNotFoundError):
        read_whole(path_of(mount, NOT_FOUND))
    assert read_whole(path_of(mount, FLAKY)) == FLAKY.data
    assert read_whole(path_of(mount, CUT)) == CUT.data
    assert read_whole(path_of(mount, OK_B)) == OK_B.data

    gets = proxy.object_gets()
    log = [(r.path.rsplit("/", 1)[-1][-20:], r.range, r.status, r.fault) for r in gets]
    faulted = [r for r in gets if r.fault]
    assert [r.fault for r in faulted].count("Respond") == 3 and len(faulted) == 4, log
    text, doc = read_text(mount.path / ".stats"), stats_json(mount)
    expected = {
        "Total attempts": len(gets), "Successful": len(gets) - 4, "Failed": 4,
        "Retries": 3,  # the two 503s and the cut; a 404 is not retried
        "Not found errors": 1, "Auth errors": 0, "Timeouts": 0,
        "Network errors": 1, "Server errors": 2, "Changed at the source": 0,
    }
    assert counts(text) == expected, f"proxy saw {log}\n{text}"
    assert {n: doc["performance"][k] for n, k in JSON_COUNT_NAMES.items()} == expected, doc
    assert field(text, "Successful").endswith(f"({100 * (len(gets) - 4) / len(gets):.1f}%)")

    # The two renderings carry the same figures.
    d = doc["download"]
    assert field(text, "Total bytes") == f"{d['total_bytes']} bytes"
    assert field(text, "Largest file") == f"{d['largest_bytes']} bytes"
    assert field(text, "Smallest file") == f"{d['smallest_bytes']} bytes"
    assert field(text, "Bytes served after download") == f"{doc['cache']['bytes_from_network']} bytes"
    errors, attempts = numbered(text, "Recent errors"), numbered(text, "Recent download attempts")
    assert len(errors) == len(doc["recent_errors"]) == 4, errors
    assert len(attempts) == len(doc["recent_attempts"]) == len(gets), attempts
    assert sorted(e["category"] for e in doc["recent_errors"]) == ["network", "not_found",
                                                                   "server", "server"]
    assert [a["success"] for a in doc["recent_attempts"]] == [r.fault is None for r in gets], log
    assert sum("✓ Success" in a for a in attempts) == len(gets) - 4, attempts
    [src] = doc["sources"]
    assert src["url"] == proxy.url and src["failures"] == 4, src
    check_consistent(text)


# --- 2. snapshots while downloads run ------------------------------------------

def test_each_open_is_one_consistent_snapshot(mount_factory):
    m = mount_factory("m", "19", *THROTTLE)
    for o in SLOW[:2]:
        os.stat(path_of(m, o))
    with reading_in_background(*(path_of(m, o) for o in SLOW[:2])):
        wait_for(lambda: downloading(m), 20, "a download in flight")
        for _ in range(2):  # two opens while bytes arrive
            check_consistent(read_text(m.path / ".stats"))
            doc = stats_json(m)
            perf = doc["performance"]
            assert perf["successful"] + perf["failed"] == perf["total_attempts"], perf
            for p in doc["in_progress"]:
                assert 0 <= p["bytes_done"] <= p["bytes_total"], p

        # A handle keeps the report it was opened with: read a little, let downloads
        # progress, then read the rest.
        fd = os.open(m.path / ".stats", os.O_RDONLY)
        try:
            head = os.read(fd, 300)
            at_open = read_text(m.path / ".stats")  # opened just after: at least as new
            at_open_bytes = sum(int(p["done"]) for p in in_progress(at_open))
            wait_for(lambda: sum(int(p["done"]) for p in in_progress(read_text(m.path / ".stats")))
                     != at_open_bytes, 20, "the download to progress")
            rest = b""
            while chunk := os.read(fd, 4096):
                rest += chunk
        finally:
            os.close(fd)
        held = (head + rest).decode()
        check_consistent(held)
        runtime = lambda t: float(field(t, "Total runtime").split()[0])  # noqa: E731
        assert runtime(held) <= runtime(at_open), (held, at_open)
        assert field(held, "Session ID") == field(at_open, "Session ID")


# --- 3. honest ETA ---------------------------------------------------------------

def test_in_progress_estimates_before_showing_speed_and_eta(mount_factory, proxy):
    m = mount_factory("m", "19", *THROTTLE)
    obj = SLOW[2]
    os.stat(path_of(m, obj))
    # No byte for the first 2 s of the first download: a speed would be invented, and the
    # first look need not come within goesfs's 0.25 s first sample on a loaded machine.
    proxy.add_fault(obj.key, Delay(2), times=1)
    lines = lambda: [p[0] for p in in_progress(read_text(m.path / ".stats"))]  # noqa: E731
    with reading_in_background(path_of(m, obj)):
        first = wait_for(lines, 20, "a line in In progress", interval=0.01)
        assert all("estimating…" in l for l in first), first
        speed = re.compile(r"\d+ / \d+ bytes \([\d.]+%\), [\d.]+ MB/s, ETA [\d.]+ s for the (rest of file|\d+ bytes requested), ")
        wait_for(lambda: any(speed.search(l) for l in lines()), 30,
                 lambda: f"a speed and ETA, last: {lines()}")
        seen = wait_for(lambda: [p for p in downloading(m) if p["eta_seconds"] is not None], 20, "a JSON ETA")
        assert all(p["speed"] > 0 and p["eta_of"] in ("rest_of_file", "requested_blocks") for p in seen), seen


# --- 4. network diagnostics ---------------------------------------------------

def test_diagnostics_reports_reachable_and_unreachable_sources(mount_factory, proxy, goesfs_bin):
    ok = mount_factory("ok", "16", "--source", proxy.url)
    report = wait_for(lambda: diagnostics_done(ok), 20, "the diagnostics run at mount")
    block = source_block(report, proxy.url)
    assert TIMINGS.search(block), block
    assert re.search(r"^   reachable$", block, re.MULTILINE), block
    for line in ("Platform:", "Hostname:", "libcurl:", "goesfs:", "SQLite:", "libfuse:", "DNS servers:"):
        assert f"\n{line} " in report, f"no {line} in:\n{report}"
    assert "Verdict: all sources reachable" in report, report

    closed = closed_port_url()
    half = mount_factory("half", "16", "--source", proxy.url, "--source", closed)
    report = wait_for(lambda: diagnostics_done(half), 20, "the diagnostics run at mount")
    assert "   NOT reachable: " in source_block(report, closed), report
    assert re.search(rf"Verdict: partly reachable: {re.escape(closed)} failing", report), report

    cli = subprocess.run([goesfs_bin, "diagnose", "--source", proxy.url, "--source", closed],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli
    assert TIMINGS.search(source_block(cli.stdout, proxy.url)), cli.stdout
    assert "NOT reachable: " in source_block(cli.stdout, closed), cli.stdout
    assert f"Verdict: partly reachable: {closed} failing" in cli.stdout, cli.stdout

    cli = subprocess.run([goesfs_bin, "diagnose", "--source", closed],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2, cli
    assert "Verdict: no source is reachable" in cli.stdout, cli.stdout


# --- 5. goesfs stats --watch ----------------------------------------------------

def test_watch_draws_bars_on_a_terminal_and_plain_frames_on_a_pipe(mount_factory, goesfs_bin):
    m = mount_factory("m", "19", *THROTTLE)
    for o in SLOW:
        os.stat(path_of(m, o))
    watch = [goesfs_bin, "stats", str(m.path), "--watch", "--interval", "0.5"]
    with reading_in_background(*(path_of(m, o) for o in SLOW)):
        wait_for(lambda: downloading(m), 20, "a download in flight")
        rc, screen = run_in_pty(watch + ["--count", "3"], timeout=30)
        assert rc == 0, screen
        for seq in ("\x1b[H", "\x1b[K", "\x1b[J"):
            assert seq in screen, f"{seq!r} not in {screen!r}"
        assert re.search(r"\[#+-*\]\s+\d+%", screen), screen
        assert "total (" in screen and "goesfs: " in screen, screen

        rc, one = run_in_pty(watch + ["--count", "1"], timeout=30)
        print("\n--- goesfs stats --watch --count 1 (escapes removed) ---\n"
              + re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", one).replace("\r", ""))

        piped = subprocess.run(watch + ["--count", "3"], capture_output=True, text=True, timeout=30)
        assert piped.returncode == 0, piped
        assert ESC not in piped.stdout, repr(piped.stdout)
        frames = [f for f in piped.stdout.split("\n\n") if f.strip()]
        assert len(frames) == 3 and all(f.startswith("goesfs: ") for f in frames), piped.stdout


# --- 6. the JSON schema is the documented one ------------------------------------

def documented_keys() -> dict[str, list[str]]:
    """{top-level key: its documented sub-keys} from the table in docs/STATS-JSON.md."""
    keys = {}
    for line in (ROOT / "docs" / "STATS-JSON.md").read_text().splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|(.*)\|\s*$", line)
        if m:
            content = re.sub(r"\([^)]*\)", "", m[2])  # drop "(… `null` …)"-style notes
            keys[m[1]] = [k for k in re.findall(r"`(\w+)`", content) if k != "null"]
    return keys


def test_stats_json_has_every_documented_key(mount_factory, proxy):
    m = mount_factory("m", "16,19", *THROTTLE)
    for o in (OK_B, NOT_FOUND, SLOW[3]):
        os.stat(path_of(m, o))
    proxy.add_fault(NOT_FOUND.key, Respond(404, "NoSuchKey"), times=None)
    assert read_whole(path_of(m, OK_B)) == OK_B.data
    with pytest.raises(FileNotFoundError):
        read_whole(path_of(m, NOT_FOUND))
    with reading_in_background(path_of(m, SLOW[3])):
        doc = wait_for(lambda: (d := stats_json(m))["in_progress"] and d, 20, "a download in flight")

    documented = documented_keys()
    assert len(documented) >= 10, documented
    missing = sorted(set(documented) - set(doc))
    for top, subs in documented.items():
        value = doc.get(top)
        entries = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        assert not subs or entries, f"{top}: no entries to check in {doc}"
        for i, entry in enumerate(entries):
            missing += [f"{top}[{i}].{k}" if isinstance(value, list) else f"{top}.{k}"
                        for k in subs if k not in entry]
    assert not missing, f"documented keys missing from .stats.json: {missing}"
    assert doc["schema_version"] == 1


# --- 7. the report files never touch the network -----------------------------------

def test_reading_reports_makes_no_request(mount, proxy, goesfs_bin):
    wait_for(lambda: diagnostics_done(mount), 20, "the diagnostics run at mount")
    proxy.reset()
    for _ in range(3):
        for name in (".stats", ".stats.json", ".diagnostics"):
            assert read_text(mount.path / name)
    for extra in ([], ["--json"]):
        assert subprocess.run([goesfs_bin, "stats", str(mount.path), *extra],
                              capture_output=True, timeout=30).returncode == 0
    assert proxy.records() == [], [(r.method, r.path, r.query) for r in proxy.records()]
