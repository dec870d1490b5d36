"""End-to-end fixtures: moto with GOES fixtures, the recording proxy, goesfs mounts.

Mounts are always unmounted in teardown, even when a test fails, and a failing
test's report carries the tail of each goesfs log it used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `tests.*` importable however pytest is invoked

from tests.fixtures.goes_fixtures import fixture_triples  # noqa: E402
from tests.support.polling import process_gone, wait_for  # noqa: E402
from tests.support.proxy import Proxy  # noqa: E402
from tests.support.s3server import MotoServer, create_public_buckets, upload  # noqa: E402

MOUNTS_KEY = pytest.StashKey[list]()


def mounted_paths(under: Path) -> list[str]:
    """Mount points below `under` according to /proc/mounts."""
    prefix = str(under.resolve())
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


class GoesfsMount:
    """One goesfs mount: its mountpoint, cache dir and log, and how to undo it."""

    def __init__(self, binary: str, endpoint: str, root: Path, satellites: str = "16,18"):
        self.binary, self.endpoint, self.satellites = binary, endpoint, satellites
        self.path = root / "mnt"
        self.cache_dir = root / "cache"
        self.log_file = root / "goesfs.log"
        self.pid: int | None = None

    def mount(self, *extra: str) -> "GoesfsMount":
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "mount", str(self.path), "--endpoint", self.endpoint,
               "--cache-dir", str(self.cache_dir), "--satellites", self.satellites,
               "--log-file", str(self.log_file), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"goesfs mount exited {done.returncode}: {done.stderr}\n"
                                 f"--- log tail ---\n{self.log_tail()}")
        # The CLI promises the mount is usable when it returns 0.
        assert self.is_mounted(), f"goesfs mount returned 0 but {self.path} is not mounted"
        found = re.search(r"\(pid (\d+)", done.stdout)
        self.pid = int(found.group(1)) if found else None
        return self

    def is_mounted(self) -> bool:
        return str(self.path.resolve()) in mounted_paths(self.path)

    def unmount(self) -> None:
        # A plain unmount can fail briefly while the kernel still holds the mount busy
        # (a just-closed file, slower on a loaded machine); retry for a while, then detach
        # lazily as a last resort.
        def unmounted() -> bool:
            return not self.is_mounted() or subprocess.run(
                ["fusermount3", "-u", str(self.path)], capture_output=True).returncode == 0
        try:
            wait_for(unmounted, 10, f"{self.path} to unmount", interval=0.1)
        except AssertionError:
            subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True)
        # Then the daemon's exit, so no late request of it reaches the next test's proxy log.
        if self.pid is not None:
            pid, self.pid = self.pid, None
            wait_for(lambda: process_gone(pid), 15, f"goesfs pid {pid} to exit after unmount")

    def remount(self, *extra: str) -> "GoesfsMount":
        """Unmount and mount again over the same cache dir (proves the on-disk cache)."""
        self.unmount()
        return self.mount(*extra)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log file)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        for m in item.stash.get(MOUNTS_KEY, []):
            report.sections.append((f"goesfs log tail ({m.log_file})", m.log_tail()))


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """moto on a free port, holding all GOES fixtures."""
    state = os.environ.get("GOESFS_TEST_STATE")  # scripts/test kills what is listed there
    pid_file = Path(state) / f"moto-{os.getpid()}.pid" if state else None
    log = tmp_path_factory.getbasetemp() / "moto.log"
    with MotoServer(log_path=log, pid_file=pid_file) as server:
        client = server.client()
        create_public_buckets(client)
        upload(client, fixture_triples())
        yield server


@pytest.fixture(scope="session")
def _proxy_server(s3):
    with Proxy(s3.url) as proxy:
        yield proxy


@pytest.fixture
def proxy(_proxy_server):
    """The session proxy, with an empty log and no faults armed for this test.

    Its log accessors wait until it is idle (see tests/support/proxy.py). No wait here:
    the previous test's daemons have exited, so nothing of theirs can start a request."""
    _proxy_server.clear_faults()  # releases stalls first
    _proxy_server.reset(wait=False)
    yield _proxy_server
    _proxy_server.clear_faults()


@pytest.fixture(scope="session")
def goesfs_bin() -> str:
    binary = os.environ.get("GOESFS_BIN")
    if not binary:
        pytest.skip("GOESFS_BIN not set (scripts/test sets it after swift build)")
    assert os.access(binary, os.X_OK), f"GOESFS_BIN={binary} is not an executable"
    return binary


@pytest.fixture
def mount_factory(request, goesfs_bin, proxy, tmp_path):
    """Make mounts through the proxy; every one is unmounted in teardown."""
    made: list[GoesfsMount] = []
    request.node.stash[MOUNTS_KEY] = made

    def make(name: str = "m", satellites: str = "16,18", *extra: str) -> GoesfsMount:
        m = GoesfsMount(goesfs_bin, proxy.url, tmp_path / name, satellites)
        made.append(m)
        return m.mount(*extra)

    yield make
    for m in made:
        m.unmount()


@pytest.fixture
def mount(mount_factory) -> GoesfsMount:
    """A fresh mount (empty cache) of noaa-goes16 and noaa-goes18."""
    return mount_factory()


@pytest.fixture
def quiet_mount(mount_factory) -> GoesfsMount:
    """Like `mount`, but with goesfs's readahead and next-scan prefetch off (--no-prefetch),
    for tests that count requests exactly: only what the test reads goes over the wire."""
    return mount_factory("m", "16,18", "--no-prefetch")


@pytest.fixture(scope="session", autouse=True)
def no_mount_left_behind(tmp_path_factory):
    """After the session no goesfs mount may remain; detach any that do, then fail."""
    yield
    base = tmp_path_factory.getbasetemp()
    left = mounted_paths(base)
    for path in left:
        subprocess.run(["fusermount3", "-uz", path], capture_output=True)
    assert not left, f"mounts left behind: {left}"
