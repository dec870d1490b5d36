"""Issue 8: goesfs as a system service — mount(8)/fstab, sd_notify, signals, stale
mounts, bad input, ownership options and --config.

Every goesfs process a test starts is unmounted and killed in teardown (by its own
pid, never by name). Waits poll a condition with a deadline; the only sleeps that
shape timing are inside proxy faults.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.blocks import block_count, blocks_for_bytes, blocks_in, blocks_of_gets
from tests.support.cache_tools import live_blocks
from tests.e2e.conftest import MOUNTS_KEY, ROOT, GoesfsMount, mounted_paths
from tests.fixtures.goes_fixtures import MiB, RADC_HOUR, fixture_objects
from tests.support.proxy import Delay
from tests.support.polling import process_gone, wait_for

G16 = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)]
BIG = next(o for o in G16 if o.size > 5 * MiB)  # six 1 MiB blocks
SMALL = next(o for o in G16 if o.size == 123_457)
HELPER = ROOT / "mount-scripts" / "mount.goesfs"
SBIN_HELPER = Path("/sbin/mount.goesfs")


# --- helpers ---------------------------------------------------------------


def daemon_pid(output: str) -> int:
    m = re.search(r"\(pid (\d+)", output)
    assert m, f"no '(pid N' in goesfs output: {output!r}"
    return int(m[1])


def range_start(range_header: str | None) -> int:
    m = re.fullmatch(r"bytes=(\d+)-\d*", range_header or "")
    assert m, f"not a byte range: {range_header!r}"
    return int(m[1])


def range_length(range_header: str | None) -> int:
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", range_header or "")
    assert m, f"not a closed byte range: {range_header!r}"
    return int(m[2]) - int(m[1]) + 1


def gets(proxy, obj: str) -> list[tuple]:
    """(range, fault, done) of each GET of `obj` so far, running ones too (failure messages)."""
    return [(r.range, r.fault, r.done) for r in proxy.object_gets(obj, wait=False)]


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one `Error: …` line a refused mount must print (and nothing else)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), \
        f"expected one 'Error: …' line on stderr, got:\n{done.stderr}"
    return lines[0]


class Service(GoesfsMount):
    """A goesfs mount started the way a service manager would, remembering every pid."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.pids: list[int] = []
        self.procs: list[subprocess.Popen] = []

    def argv(self, *extra: str) -> list[str]:
        return [self.binary, "mount", str(self.path), "--endpoint", self.endpoint,
                "--cache-dir", str(self.cache_dir), "--satellites", self.satellites,
                "--log-file", str(self.log_file), *extra]

    def run(self, argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a daemonising `goesfs mount`; remember the daemon's pid if it printed one."""
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})
        m = re.search(r"\(pid (\d+)", done.stdout + done.stderr)
        if m:
            self.pids.append(int(m[1]))
        return done

    def start(self, *extra: str) -> int:
        """Mount in the background; return the daemon's pid."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        done = self.run(self.argv(*extra))
        assert done.returncode == 0, f"goesfs mount exited {done.returncode}: {done.stderr}"
        assert self.is_mounted(), f"goesfs mount returned 0 but {self.path} is not mounted"
        return daemon_pid(done.stdout + done.stderr)

    def foreground(self, *extra: str, env: dict | None = None) -> subprocess.Popen:
        """`goesfs mount --foreground` as systemd runs it; output goes to a file, not a pipe."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.path.parent / "foreground.out", "ab")
        proc = subprocess.Popen(self.argv("--foreground", *extra), stdout=out, stderr=out,
                                env={**os.environ, **(env or {})})
        out.close()
        self.procs.append(proc)
        self.pids.append(proc.pid)
        return proc

    def cleanup(self) -> None:
        self.unmount()
        for pid in self.pids:  # an unmounted daemon exits by itself; give it a moment
            try:
                wait_for(lambda: process_gone(pid), 10, f"goesfs pid {pid} to exit")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def services(request, goesfs_bin, proxy, tmp_path):
    """Make Service objects (not yet mounted); all are unmounted and killed in teardown."""
    made: list[Service] = []
    request.node.stash[MOUNTS_KEY] = made  # failing tests show each log's tail

    def make(name: str = "m", satellites: str = "16,18") -> Service:
        s = Service(goesfs_bin, proxy.url, tmp_path / name, satellites)
        made.append(s)
        return s

    yield make
    for s in made:
        s.cleanup()


def names(path: Path) -> set[str]:
    return set(os.listdir(path))


def serves(s: Service) -> bool:
    """The mount answers and reads a real object correctly."""
    return (s.path / SMALL.bucket / SMALL.key).read_bytes() == SMALL.data


# --- mount(8) and fstab ----------------------------------------------------

@pytest.fixture
def sbin_helper():
    """mount(8) runs /sbin/mount.goesfs for `-t goesfs`: install ours for this test only."""
    if SBIN_HELPER.exists():
        pytest.skip(f"{SBIN_HELPER} already exists; not overwriting it")
    shutil.copy2(HELPER, SBIN_HELPER)
    try:
        yield SBIN_HELPER
    finally:
        SBIN_HELPER.unlink(missing_ok=True)


# mount(8) passes "rw" to the helper unless the options say "ro"; the fstab line has
# neither, so both forms must mount.
@pytest.mark.parametrize("ro", ["", "ro,"], ids=["as-in-the-issue", "with-ro"])
def test_mount_t_goesfs_with_fstab_options_then_umount(services, sbin_helper, goesfs_bin, proxy, ro):
    s = services()
    s.path.mkdir(parents=True)
    opts = (f"{ro}_netdev,nofail,allow_other,cache_dir={s.cache_dir},cache_size=1G,"
            f"endpoint={proxy.url},satellites=16:18,log_file={s.log_file}")
    done = s.run(["mount", "-t", "goesfs", "goesfs", str(s.path), "-o", opts],
                 env={"GOESFS_BIN": goesfs_bin})
    assert done.returncode == 0, done.stderr
    assert s.is_mounted()
    assert {"noaa-goes16", "noaa-goes18"} <= names(s.path) and "noaa-goes17" not in names(s.path)
    assert serves(s)
    with open("/proc/mounts") as f:
        line = next(x for x in f if x.split()[1] == str(s.path))
    assert "allow_other" in line.split()[3], line
    assert s.cache_dir.is_dir() and s.log_file.exists()

    umounted = subprocess.run(["umount", str(s.path)], capture_output=True, text=True, timeout=30)
    assert umounted.returncode == 0, umounted.stderr
    assert not s.is_mounted()
    pid = daemon_pid(done.stdout + done.stderr)
    wait_for(lambda: process_gone(pid), 30, "the daemon to exit after umount")


def test_mount_helper_rejects_unknown_option(services, goesfs_bin):
    s = services()
    s.path.mkdir(parents=True)
    done = subprocess.run([str(HELPER), "goesfs", str(s.path), "-o", "allow_other,bogus=1"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "GOESFS_BIN": goesfs_bin})
    assert done.returncode == 1
    assert "unknown option" in done.stderr and "bogus" in done.stderr, done.stderr
    assert not s.is_mounted()


# --- sd_notify ---------------------------------------------------------------

class NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.address = address
        self.fields: dict[str, str] = {}

    def wait(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """Receive until a message sets `key` (to `value`); return that message's fields."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value or '…'} within {timeout}s; saw {self.fields}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.fields.update(message)
            if key in message and (value is None or message[key] == value):
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_sd_notify_ready_then_stopping(services, kind):
    s = services()
    # A short path: sun_path holds only 108 bytes, pytest's tmp_path can be longer.
    sock_dir = Path("/tmp") / f"goesfs-notify-{uuid.uuid4().hex[:8]}"
    sock_dir.mkdir()
    address = str(sock_dir / "notify") if kind == "path" else f"@goesfs-test-{uuid.uuid4().hex}"
    listener = NotifyListener(address)
    try:
        proc = s.foreground(env={"NOTIFY_SOCKET": address})
        ready = listener.wait("READY", "1")
        # READY=1 promises a usable mount: check it before anything else can happen.
        assert s.is_mounted() and {"noaa-goes16", "noaa-goes18"} <= names(s.path)
        assert serves(s)
        status = ready.get("STATUS") or listener.fields.get("STATUS", "")
        assert status.startswith("serving") and str(s.path) in status, listener.fields
        assert proc.poll() is None, "goesfs exited after READY=1"

        proc.send_signal(signal.SIGTERM)
        listener.wait("STOPPING", "1")
        assert proc.wait(30) == 0
        assert not s.is_mounted()
    finally:
        listener.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_sigint_in_foreground_unmounts_and_exits_0(services):
    s = services()
    proc = s.foreground()
    wait_for(s.is_mounted, 30, "the foreground mount")
    assert serves(s)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not s.is_mounted()


# --- signals -----------------------------------------------------------------

def test_sigterm_during_download_then_remount_resumes(services, proxy):
    s = services()
    proc = s.foreground()
    wait_for(s.is_mounted, 30, "the foreground mount")
    path = s.path / BIG.bucket / BIG.key
    obj = f"/{BIG.bucket}/{BIG.key}"

    # Every request from 3 MiB on is slow but bounded, whoever asks for it (goesfs reads ahead
    # of a sequential reader): SIGTERM lands while such a download is open.
    proxy.add_fault(lambda r: r.path == obj and range_start(r.range) >= 3 * MiB, Delay(4), times=None)
    # The first 3 MiB are read to the end (so recorded); no kernel readahead past them.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        assert os.pread(fd, 3 * MiB, 0) == BIG.data[:3 * MiB]
    finally:
        os.close(fd)
    # Not waiting for the proxy to be idle (readahead may be in a delayed block already), so
    # complete means every byte sent: counted before it goes out, unlike `done`.
    sent = [blocks_in(r.range, BIG.size) for r in proxy.object_gets(obj, wait=False)
            if range_start(r.range) < 3 * MiB and r.bytes_sent == range_length(r.range)]
    assert blocks_for_bytes(0, 3 * MiB) <= {b for blocks in sent for b in blocks}
    reader = subprocess.Popen(["dd", f"if={path}", "of=/dev/null", "bs=1M", "skip=3"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: [r for r in proxy.object_gets(obj, wait=False)
                          if r.fault == "Delay" and not r.done],
                 30, lambda: f"a delayed block download; proxy saw {gets(proxy, obj)}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not s.is_mounted()
        reader.wait(30)  # its outcome does not matter: the mount went away under it
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(10)

    proxy.clear_faults()
    proxy.reset()
    s.start()
    assert path.read_bytes() == BIG.data
    fetched = blocks_of_gets(proxy.object_gets(obj), BIG.size)
    assert not set(fetched) & blocks_for_bytes(0, 3 * MiB), f"re-fetched blocks recorded before SIGTERM: {sorted(fetched)[:20]}"
    assert len(fetched) == len(set(fetched)), "a block fetched twice"


def test_sighup_reopens_the_log_file(services):
    s = services()
    pid = s.start()
    wait_for(s.log_file.exists, 10, "the log file")
    rotated = s.log_file.with_name(s.log_file.name + ".1")
    s.log_file.rename(rotated)  # what logrotate does before it signals
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: s.log_file.exists() and "reopened the log file (SIGHUP)" in s.log_file.read_text(),
             10, "a new log file saying it was reopened")
    assert rotated.exists()
    assert not process_gone(pid) and serves(s)


def test_sigusr1_writes_the_stats_report_to_the_log(services):
    s = services()
    pid = s.start()
    assert serves(s)  # something for the report to count
    # A reader may be answered before its download is counted as done: wait for the count first.
    wait_for(lambda: re.search(r"^Successful: [1-9]", (s.path / ".stats").read_text(), re.MULTILINE), 10,
             "the download counted in .stats")
    os.kill(pid, signal.SIGUSR1)
    text = wait_for(lambda: s.log_file.exists() and "S3 Download Statistics:" in s.log_file.read_text()
                    and s.log_file.read_text(), 10, "the report in the log")
    assert "report requested (SIGUSR1)" in text
    report = text[text.index("S3 Download Statistics:"):]
    assert re.search(r"^Successful: [1-9]", report, re.MULTILINE), report[:800]
    assert not process_gone(pid) and s.is_mounted()


# --- stale mounts ------------------------------------------------------------

def test_stale_mount_after_kill_9_recovers(services, proxy):
    s = services()
    pid = s.start()
    assert serves(s)
    # A reply may go out before its blocks are recorded (README: a crash loses at most the blocks
    # in flight); what the index has recorded is what must survive.
    wait_for(lambda: len(live_blocks(s.cache_dir, SMALL.bucket, SMALL.key)) == block_count(SMALL.size), 10,
             "the index never recorded the object's blocks")
    os.kill(pid, signal.SIGKILL)

    def dead_mount() -> bool:
        try:
            os.listdir(s.path)  # a readdir must reach the daemon (a stat may be cached)
        except OSError as e:
            return e.errno == errno.ENOTCONN
        return False

    wait_for(dead_mount, 10, "'Transport endpoint is not connected'")
    proxy.reset()
    done = s.run(s.argv())
    assert done.returncode == 0, done.stderr
    assert re.search(r"was a dead mount.*detached it", done.stderr), done.stderr
    assert mounted_paths(s.path) == [str(s.path.resolve())], "the dead mount is still stacked"
    assert serves(s)
    assert proxy.object_gets(f"/{SMALL.bucket}/{SMALL.key}") == [], "the cache did not survive kill -9"


# --- bad input ---------------------------------------------------------------

@pytest.fixture
def readonly_dir(tmp_path):
    """A directory on a read-only tmpfs (root ignores permission bits, not a ro mount)."""
    path = tmp_path / "ro"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def bad_inputs():
    """case -> (setup(service, request) returning extra argv, expected message)."""
    def cache_in(sub):
        def setup(s, request):
            base = request.getfixturevalue("readonly_dir")
            s.cache_dir = base / sub if sub else base
            return []
        return setup

    def under_a_file(s, request):
        (s.path.parent / "file").write_text("x")
        s.cache_dir = s.path.parent / "file" / "cache"
        return []

    def non_empty(s, request):
        (s.path / "something").write_text("x")
        return []

    def live_mount(s, request):
        s.start()
        return []

    def cache_in_use(s, request):
        other = request.getfixturevalue("services")("other")
        other.cache_dir = s.cache_dir
        other.start()
        return []

    return {
        "missing-mountpoint": (lambda s, r: shutil.rmtree(s.path) or [], "does not exist"),
        "non-empty": (non_empty, "is not empty"),
        "cache-dir-uncreatable": (under_a_file, "cannot create the cache directory"),
        "cache-dir-readonly-fs": (cache_in("sub"), "cannot create the cache directory"),
        "cache-dir-not-writable": (cache_in(""), "is not writable"),
        "bad-size": (lambda s, r: ["--cache-size", "12Q"], "12Q"),
        "bad-url": (lambda s, r: ["--endpoint", "ftp://x"], "ftp://x"),
        "unknown-satellite": (lambda s, r: ["--satellites", "15"], "15"),
        "already-mounted": (live_mount, "is already mounted"),
        "cache-in-use": (cache_in_use, "is in use by another goesfs"),
        "rw": (lambda s, r: ["-o", "rw"], "read-only"),
    }


@pytest.mark.parametrize("case", bad_inputs())
def test_bad_input_is_one_clear_line(services, request, tmp_path, case):
    setup, message = bad_inputs()[case]
    s = services()
    s.path.mkdir(parents=True)
    s.cache_dir.mkdir(parents=True)
    extra = setup(s, request)
    before = mounted_paths(tmp_path)

    done = s.run(s.argv(*extra))
    assert done.returncode != 0, f"goesfs accepted it: {done.stdout}{done.stderr}"
    assert message in error_line(done), done.stderr
    assert mounted_paths(tmp_path) == before, "a refused mount left something mounted"


def test_nonempty_option_mounts_over_a_non_empty_directory(services):
    s = services()
    s.path.mkdir(parents=True)
    (s.path / "something").write_text("x")
    s.start("-o", "nonempty")
    assert "noaa-goes16" in names(s.path) and serves(s)
    s.unmount()
    assert (s.path / "something").read_text() == "x"


# --- ownership options ---------------------------------------------------------

@pytest.mark.parametrize("options,uid,gid,dir_mode,file_mode", [
    (["-o", "uid=1234", "-o", "gid=2345"], 1234, 2345, 0o555, 0o444),
    (["-o", "umask=027"], 0, 0, 0o550, 0o440),
    (["-o", "file_mode=0440", "-o", "dir_mode=0550"], 0, 0, 0o550, 0o440),
    (["-o", "allow_other", "-o", "uid=1000", "-o", "umask=077"], 1000, 0, 0o500, 0o400),
], ids=["uid-gid", "umask", "modes", "allow_other-uid-umask"])
def test_ownership_options_show_in_stat(services, options, uid, gid, dir_mode, file_mode):
    s = services()
    s.start(*options)
    for path, mode in [(s.path, dir_mode), (s.path / "noaa-goes16", dir_mode),
                       (s.path / ".stats", file_mode), (s.path / SMALL.bucket / SMALL.key, file_mode)]:
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, mode), \
            f"{path}: uid {st.st_uid} gid {st.st_gid} mode {oct(st.st_mode & 0o7777)}"
    with open("/proc/mounts") as f:
        line = next(x for x in f if x.split()[1] == str(s.path))
    assert ("allow_other" in line.split()[3]) == ("allow_other" in options), line


# --- --config --------------------------------------------------------------------

def test_config_file_and_flags_override_it(services, tmp_path, proxy):
    s = services(satellites="16")
    s.path.mkdir(parents=True)
    config = tmp_path / "goesfs.toml"
    config.write_text(
        "# goesfs settings; keys mirror the flags\n"
        f'endpoint = "{proxy.url}"\n'
        f'cache_dir = "{s.cache_dir}"\n'
        f'log_file = "{s.log_file}"\n'
        'satellites = "16"\n'
        'o = ["uid=1000"]\n')

    done = s.run([s.binary, "mount", str(s.path), "--config", str(config)])
    assert done.returncode == 0, done.stderr
    assert "noaa-goes16" in names(s.path) and "noaa-goes18" not in names(s.path)
    assert os.stat(s.path).st_uid == 1000
    assert serves(s)
    assert s.cache_dir.is_dir() and s.log_file.exists()
    s.unmount()

    other_log = tmp_path / "flag.log"
    done = s.run([s.binary, "mount", str(s.path), "--config", str(config),
                  "--satellites", "18", "--log-file", str(other_log), "-o", "uid=1234"])
    assert done.returncode == 0, done.stderr
    assert "noaa-goes18" in names(s.path) and "noaa-goes16" not in names(s.path)
    assert os.stat(s.path).st_uid == 1234
    assert other_log.exists() and str(other_log) in done.stdout + done.stderr
