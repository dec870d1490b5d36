"""Issue 13: observability — per-file progress with an honest ETA, a `--watch` that survives
torn reads, counts that add up, `/metrics` checked by promtool and scraped by a real
Prometheus, and JSON logs.

Slow downloads come from `--max-bandwidth` (goesfs's own throttle over all transfers), so the
real remaining time of a read is known only afterwards: each frame's ETA is compared with it
once the reader is done. Waits poll real conditions (tests/support/polling.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from urllib.parse import parse_qs
from pathlib import Path

import pytest

from tests.fixtures.goes_fixtures import MiB, RADC_HOUR, big_object, fixture_objects
from tests.support.polling import wait_for
from tests.support.proxy import Respond
from tests.support.s3server import free_port
from tests.support.stats_report import check_consistent, counts, field
from tests.support.terminal import PtyProcess

ROOT = Path(__file__).resolve().parents[2]
BIG = big_object()                       # 24 MiB noaa-goes19 scan
G16 = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)
       and o.kind == "random"]
by_size = {o.size: o for o in G16}
SMALL, MISSING, FLAKY = by_size[123_457], by_size[4097], by_size[65_536]
# A FUSE read of a cold file and the row it makes: `name [###---]  42%   2.10 MB/s ETA 7s  note`.
ROW = re.compile(r"^(?P<label>\S+) \[[#-]+\]\s+(?P<pct>\d+)% +(?:(?P<speed>[\d.]+) MB/s|estimating…) "
                 r"ETA (?:(?P<eta>\d+)s|…)\s*(?P<note>.*)$")


def path_of(mount, obj) -> Path:
    return mount.path / obj.bucket / obj.key


def stats_json(mount) -> dict:
    with open(mount.path / ".stats.json", encoding="utf-8") as f:
        return json.loads(f.read())


def stats_text(mount) -> str:
    with open(mount.path / ".stats", encoding="utf-8") as f:
        return f.read()


def read_whole(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_uncached(path: Path) -> bytes:
    """Reads past the kernel's page cache (files are opened with keep_cache), so goesfs answers."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class BackgroundReader:
    """Reads a file start to end in 128 KiB reads (as `cat` does), in a thread; remembers when
    it finished. Stopped and joined on exit even when the test fails."""

    def __init__(self, path: Path):
        self.path, self.finished_at, self.error = path, None, None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with open(self.path, "rb", buffering=0) as f:
                while not self.stop.is_set() and f.read(128 * 1024):
                    pass
            self.finished_at = time.monotonic()
        except OSError as e:
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=120)


# --- 1. one row per file, growing, with an ETA within 30 % -------------------------

def test_watch_shows_one_growing_row_per_file_with_an_eta_close_to_the_real_time(mount_factory, goesfs_bin):
    m = mount_factory("m", "19", "--max-bandwidth", "2M")
    os.stat(path_of(m, BIG))
    watch = PtyProcess([goesfs_bin, "stats", str(m.path), "--watch", "--interval", "0.5"])
    try:
        wait_for(lambda: (watch.poll_output(), "no downloads in progress" in watch.text)[1], 30,
                 "the first frame of --watch")
        with BackgroundReader(path_of(m, BIG)) as reader:
            wait_for(lambda: (watch.poll_output(), reader.finished_at or reader.error)[1], 120,
                     "the throttled read to finish")
        assert reader.error is None, reader.error
        done = reader.finished_at
        watch.poll_output(wait=1.5)  # one more frame: the row is gone
    finally:
        assert watch.close() in (0, -15), watch.text[-2000:]

    name_tail = BIG.key.rsplit("/", 1)[-1][-20:]
    rows = []  # (time, percent, eta or None, note) of the big file's row per frame
    for t, frame in watch.frames():
        mine = [ROW.match(l) for l in frame.splitlines() if name_tail in l]
        assert len(mine) <= 1, f"more than one row for one file:\n{frame}"
        if mine:
            assert mine[0], f"unparsable row:\n{frame}"
            rows.append((t, int(mine[0]["pct"]), mine[0]["eta"] and int(mine[0]["eta"]), mine[0]["note"]))
    assert len(rows) >= 8, watch.frames()
    percents = [p for _, p, _, _ in rows]
    assert percents == sorted(percents), f"the percentage went back: {percents}"
    assert percents[0] < 30 and percents[-1] > 80, percents
    first_eta = next(i for i, r in enumerate(rows) if r[2] is not None)
    assert first_eta >= 1, "an ETA was shown before the estimate was stable"
    # A sequential reader: the ETA is of the rest of the file (until only its last block is left).
    wrong = [r for r in rows[first_eta:] if done - r[0] >= 2
             and not re.fullmatch(r"rest of file, (reader\+readahead|readahead)", r[3].strip())]
    assert not wrong, wrong
    # Each ETA against the time the read really took from that frame on (rounded to whole
    # seconds on screen: half a second of that is rounding, not error).
    errors, raw = [], []
    for t, _, eta, _ in rows[first_eta:]:
        real = done - t
        if eta is not None and real >= 2:
            errors.append((abs(eta - real) - 0.5) / real)
            raw.append(abs(eta - real) / real)
    assert errors, rows
    print(f"\nETA error over {len(errors)} frames with >= 2 s left: |shown - real| / real max {max(raw):.0%}, "
          f"mean {sum(raw) / len(raw):.0%}; less the 0.5 s of whole-second rounding: max {max(errors):.0%}")
    print("frames (percent, eta, real):", [(p, e, round(done - t, 1)) for t, p, e, _ in rows])
    assert max(errors) <= 0.30, (errors, rows, done)
    # The same row in .stats.json and .stats is covered by test 2's snapshot checks.


def test_a_reader_that_stops_early_is_promised_only_what_is_in_flight(mount_factory):
    m = mount_factory("m", "19", "--max-bandwidth", "1M")
    path = path_of(m, BIG)
    row = lambda: next((r for r in stats_json(m)["in_progress"] if r["key"] == BIG.key), None)  # noqa: E731
    with open(path, "rb", buffering=0) as f:
        for _ in range(32):  # 4 MiB in order: readahead runs
            assert f.read(128 * 1024)
        reading = wait_for(lambda: (r := row()) and r["eta_of"] == "rest_of_file" and r, 30,
                           lambda: f"a rest-of-file row while the file is open, got {row()}")
        assert reading["driver"] in ("readahead", "reader+readahead"), reading
        assert reading["eta_bytes"] == BIG.size - reading["bytes_done"], reading
    # Closed after 4 MiB: what is still in flight finishes, and the ETA is of that only.
    stopped = wait_for(lambda: "gone" if (r := row()) is None else r["eta_of"] == "requested_blocks" and r, 30,
                       lambda: f"the row to cover only the blocks in flight, got {row()}")
    if stopped != "gone":
        assert stopped["eta_bytes"] <= 17 * MiB and stopped["bytes_done"] + stopped["eta_bytes"] < BIG.size, stopped
    while (r := row()) is not None:  # never again the whole file, until the row goes
        assert r["eta_of"] == "requested_blocks", r
    assert stats_json(m)["download"]["total_bytes"] < BIG.size, "a reader that stopped early made the whole file be fetched"


# --- 2. --watch on a torn report, and when the mount goes away -----------------------

def test_watch_retries_a_torn_report_and_says_when_the_mount_is_gone(mount_factory, goesfs_bin, tmp_path):
    m = mount_factory("m", "16")
    assert read_whole(path_of(m, SMALL)) == SMALL.data
    good = (m.path / ".stats.json").read_text()
    # A folder that looks like a mount to `goesfs stats` (it only reads .stats.json there).
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / ".stats.json").write_text(good)
    watch = PtyProcess([goesfs_bin, "stats", str(fake), "--watch", "--interval", "0.2"])
    try:
        seen = lambda s: (watch.poll_output(), s in watch.text)[1]  # noqa: E731
        wait_for(lambda: seen("1 listings") or seen(" listings,"), 20, "a frame from the good report")
        (fake / ".stats.json").write_text(good[: len(good) // 2])  # torn: half a document
        wait_for(lambda: seen("the report could not be read (not a complete report"), 20,
                 lambda: f"the torn-report line, got {watch.text[-500:]!r}")
        assert watch.proc.poll() is None, "--watch died on a torn report"
        before = len(watch.frames())
        (fake / ".stats.json").write_text(good)
        wait_for(lambda: (watch.poll_output(), any("no downloads in progress" in f
                                                     for _, f in watch.frames()[before:]))[1],
                 20, "frames again once the report is whole")
    finally:
        watch.close()

    # A real mount going away mid-watch: one clear line, a non-zero exit.
    watch = PtyProcess([goesfs_bin, "stats", str(m.path), "--watch", "--interval", "0.2"])
    try:
        wait_for(lambda: (watch.poll_output(), "no downloads in progress" in watch.text)[1], 20, "a frame")
        m.unmount()
        wait_for(lambda: (watch.poll_output(), watch.proc.poll() is not None)[1], 20, "--watch to stop")
        assert f"goesfs: {m.path} is not mounted any more" in watch.text, watch.text[-500:]
    finally:
        assert watch.close() == 1


# --- 3. counts that add up, the same in .stats, .stats.json and /metrics ----------------

def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        return r.read().decode()


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample; labels must match exactly (in any order)."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if m and dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[1] or "")) == labels:
            return float(m[2])
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def sample_sum(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if m and all(v == dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[1])).get(k) for k, v in labels.items()):
            total += float(m[2])
    return total


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool and prometheus from Debian's `prometheus`, installed when missing (as CI
    starts from a clean machine), the way scripts/test installs its packages."""
    if subprocess.run(["sh", "-c", "command -v promtool && command -v prometheus"],
                      capture_output=True).returncode != 0:
        done = subprocess.run(["bash", "-c", 'REPO_ROOT="$1"; source "$1/scripts/lib/deps.sh"; '
                               'ensure_apt_packages "${GOESFS_TEST_APT_PACKAGES[@]}"', "-", str(ROOT)],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"could not install prometheus: {done.stderr[-2000:]}"
    return "promtool"


def test_counts_add_up_and_metrics_match_stats_json(mount_factory, proxy, promtool):
    port = free_port()
    # The hour's listing fails once, then is retried: listings count apart from data requests.
    proxy.add_fault(lambda r: r.is_listing and parse_qs(r.query).get("prefix") == [RADC_HOUR],
                    Respond(500, "InternalError"), times=1)
    m = mount_factory("m", "16", "--no-prefetch", "--metrics", f"127.0.0.1:{port}")
    for o in (SMALL, MISSING, FLAKY):
        os.stat(path_of(m, o))
    proxy.add_fault(MISSING.key, Respond(404, "NoSuchKey"), times=None)
    proxy.add_fault(FLAKY.key, Respond(503, "SlowDown"), times=2)
    assert read_whole(path_of(m, SMALL)) == SMALL.data
    assert read_uncached(path_of(m, SMALL)) == SMALL.data  # the second read: from goesfs's cache
    with pytest.raises(FileNotFoundError):
        read_whole(path_of(m, MISSING))
    assert read_whole(path_of(m, FLAKY)) == FLAKY.data
    proxy.wait_idle()

    text, doc, metrics = stats_text(m), stats_json(m), metrics_text(port)
    check_consistent(text)
    perf, listings, cache = doc["performance"], doc["listings"], doc["cache"]
    # Identities of docs/STATS-FORMAT.md.
    assert perf["total_attempts"] == perf["successful"] + perf["failed"], perf
    assert perf["failed"] == sum(perf[k] for k in ("not_found_errors", "auth_errors", "timeouts", "network_errors",
                                                   "server_errors", "changed_errors")), perf
    assert listings["requests"] == listings["successful"] + listings["failed"] >= 1, listings
    assert listings["failed"] == sum(listings["errors"].values()) == 1, listings
    assert sum(s["attempts"] for s in doc["sources"]) == perf["total_attempts"] + listings["requests"], doc
    assert sum(s["failures"] for s in doc["sources"]) == perf["failed"] + listings["failed"], doc
    # Against the wire: every request the proxy saw is one attempt of one kind.
    # (The one-key listings of .diagnostics are its own probes, not counted.)
    records = [r for r in proxy.records() if "max-keys" not in parse_qs(r.query)]
    assert perf["total_attempts"] == len([r for r in records if not r.is_listing]), records
    assert listings["requests"] == len([r for r in records if r.is_listing]), records
    assert perf["not_found_errors"] == 1 and perf["server_errors"] == 2, perf
    # What a scientist sees: bytes per product, from cache and after download, adding up.
    by = {(p["satellite"], p["product"]): p for p in doc["by_product"]}
    radc = by[("goes16", "ABI-L1b-RadC")]
    assert radc["bytes_from_cache"] == SMALL.size and cache["bytes_from_cache"] == SMALL.size, doc
    assert sum(p["bytes_from_network"] for p in doc["by_product"]) == cache["bytes_from_network"]
    assert sum(p["bytes_fetched"] for p in doc["by_product"]) == cache["bytes_fetched"]
    # Saved: served beyond fetched. SMALL was fetched once and read twice.
    assert radc["bytes_saved"] == radc["bytes_from_cache"] + radc["bytes_from_network"] - radc["bytes_fetched"] >= SMALL.size, radc
    assert cache["bytes_saved"] == sum(p["bytes_saved"] for p in doc["by_product"]), doc
    assert (f"goes16 ABI-L1b-RadC: {SMALL.size} / {radc['bytes_from_network']}, fetched {radc['bytes_fetched']}, "
            f"saved {radc['bytes_saved']}") in text, text
    assert counts(text)["Total attempts"] == perf["total_attempts"]
    assert field(text, "Listing requests") == str(listings["requests"])

    # /metrics: the same numbers, and promtool's checks.
    assert sample(metrics, "goesfs_requests_total", kind="data") == perf["total_attempts"]
    assert sample(metrics, "goesfs_requests_total", kind="listing") == listings["requests"]
    assert sample(metrics, "goesfs_request_failures_total", kind="data", category="not_found") == 1
    assert sample(metrics, "goesfs_request_failures_total", kind="listing", category="server") == 1
    assert sample(metrics, "goesfs_request_duration_seconds_count", kind="data") == perf["total_attempts"]
    assert sample(metrics, "goesfs_downloaded_bytes_total") == doc["download"]["total_bytes"]
    assert sample_sum(metrics, "goesfs_served_bytes_total", **{"from": "cache"}) == cache["bytes_from_cache"]
    assert sample_sum(metrics, "goesfs_fetched_bytes_total") == cache["bytes_fetched"]
    assert sample(metrics, "goesfs_cache_saved_bytes") == cache["bytes_saved"]
    assert sample(metrics, "goesfs_cache_hits_total") == cache["reads_from_cache"] >= 1
    assert sample(metrics, "goesfs_cache_limit_bytes") == cache["limit_bytes"]
    assert sample(metrics, "goesfs_source_requests_total", source=proxy.url) == doc["sources"][0]["attempts"]
    assert not re.search(r'\{[^}]*(key|path)="', metrics), "a key as a label"
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}\n{metrics}"
    assert check.stdout.strip() == "" and check.stderr.strip() == "", f"promtool lints: {check.stdout}{check.stderr}"
    # The server goes with the mount.
    m.unmount()

    def refused():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).close()
            return False
        except OSError:
            return True
    wait_for(refused, 20, "/metrics to stop answering after unmount")
    print("\n--- /metrics excerpt ---\n" + "\n".join(l for l in metrics.splitlines()
                                                     if re.match(r"goesfs_(requests|cache_hits|served|time_to_first_byte_seconds_bucket\{kind=\"data\",le=\"0.05)", l)))


# --- 4. a real Prometheus scrapes the mount ---------------------------------------------

def test_a_prometheus_server_scrapes_the_mount(mount_factory, promtool, tmp_path):
    port = free_port()
    m = mount_factory("m", "16", "--no-prefetch", "--metrics", f"127.0.0.1:{port}")
    assert read_whole(path_of(m, SMALL)) == SMALL.data
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n  - job_name: goesfs\n"
                      f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    server = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        def query(expr: str):
            url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    result = json.load(r)["data"]["result"]
            except (OSError, ValueError):
                return None
            return float(result[0]["value"][1]) if result else None

        want = stats_json(m)["performance"]["total_attempts"]
        got = wait_for(lambda: query('goesfs_requests_total{kind="data",job="goesfs"}') == want and want, 60,
                       lambda: f"Prometheus to scrape {want} data requests (has {query('goesfs_requests_total')})")
        assert query("up{job=\"goesfs\"}") == 1
        assert query("goesfs_cache_limit_bytes") == stats_json(m)["cache"]["limit_bytes"]
        print(f"\nPrometheus query goesfs_requests_total{{kind=\"data\"}} = {got} = .stats.json total_attempts")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_metrics_address_is_loopback_unless_given_explicitly(goesfs_bin, tmp_path):
    for bad, says in (("metrics.example.com:9464", "numeric IPv4"), ("70000", "port from 1 to 65535")):
        done = subprocess.run([goesfs_bin, "mount", str(tmp_path), "--metrics", bad], capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and says in done.stderr, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# --- 5. JSON logs -----------------------------------------------------------------

def test_json_log_is_one_event_per_line_with_the_report_categories(mount_factory, proxy):
    m = mount_factory("m", "16", "--no-prefetch", "--log-format", "json")
    os.stat(path_of(m, MISSING))
    proxy.add_fault(MISSING.key, Respond(404, "NoSuchKey"), times=None)
    with pytest.raises(FileNotFoundError):
        read_whole(path_of(m, MISSING))

    def events():
        return [json.loads(l) for l in m.log_file.read_text().splitlines() if l.strip()]
    failed = wait_for(lambda: [e for e in events() if e.get("event") == "request_failed"], 20, "a request_failed event")
    assert failed[0]["category"] == "not_found" and failed[0]["kind"] == "data", failed
    assert all({"time", "level", "message"} <= set(e) for e in events())
    assert any("mounted" in e["message"] for e in events())
    categories = {c["category"] for c in stats_json(m)["recent_errors"]}
    assert {e["category"] for e in events() if "category" in e} <= categories | {"not_found"}
