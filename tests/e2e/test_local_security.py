"""Hardening, the local part: the cache directory's rules and links planted in it, log files,
numbers on the command line, a full cache disk, descriptors, credentials in endpoint URLs.

Every mount is unmounted in teardown (conftest's fixtures); every tmpfs a test mounts is
unmounted in its own fixture's teardown.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import subprocess
from pathlib import Path

import pytest

from tests.support.blocks import block_count
from tests.e2e.conftest import MOUNTS_KEY, GoesfsMount, mounted_paths
from tests.fixtures.goes_fixtures import RADC_HOUR, fixture_objects

G16 = [o for o in fixture_objects() if o.bucket == "noaa-goes16" and o.key.startswith(RADC_HOUR)]
SMALL = next(o for o in G16 if o.size == 123_457)
VICTIM_BYTES = b"a file goesfs must never write\n"


# --- helpers ---------------------------------------------------------------

def data_file(cache_dir: Path, bucket: str, key: str) -> Path:
    """objects/<h2>/<h>.data, h = SHA-256 of bucket NUL key (docs/ARCHITECTURE.md)."""
    h = hashlib.sha256(bucket.encode() + b"\0" + key.encode()).hexdigest()
    return cache_dir / "objects" / h[:2] / f"{h}.data"


def run(binary: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, **kwargs)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one `Error: …` line a refusal must print, and no trap."""
    assert done.returncode not in (0, -4, -5, -6, 132, 133, 134), \
        f"exit {done.returncode} (0 or a trap):\n{done.stdout}{done.stderr}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), \
        f"expected one 'Error: …' line on stderr, got:\n{done.stderr}"
    return lines[0]


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_BYTES)
    yield path
    assert path.read_bytes() == VICTIM_BYTES, "goesfs wrote through a planted link"


class BareMount(GoesfsMount):
    """A mount that leaves creating its cache directory to goesfs (conftest's creates it first)."""

    def mount(self, *extra: str) -> "BareMount":
        self.path.mkdir(parents=True, exist_ok=True)
        done = run(self.binary, "mount", str(self.path), "--endpoint", self.endpoint, "--cache-dir", str(self.cache_dir),
                   "--satellites", self.satellites, "--log-file", str(self.log_file), *extra)
        assert done.returncode == 0, f"goesfs mount exited {done.returncode}: {done.stderr}\n{self.log_tail()}"
        found = re.search(r"\(pid (\d+)", done.stdout)
        self.pid = int(found.group(1)) if found else None
        return self


@pytest.fixture
def bare(request, goesfs_bin, proxy, tmp_path):
    """Makes BareMounts (not yet mounted); each is unmounted in teardown."""
    made: list[BareMount] = []
    request.node.stash[MOUNTS_KEY] = made

    def make(name: str = "m") -> BareMount:
        m = BareMount(goesfs_bin, proxy.url, tmp_path / name)
        made.append(m)
        return m

    yield make
    for m in made:
        m.unmount()


# --- 1. the cache directory ----------------------------------------------------

def _symlinked(cache: Path, tmp: Path):
    (tmp / "real").mkdir()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.symlink_to(tmp / "real")


def _mode(mode):
    def setup(cache: Path, tmp: Path):
        cache.mkdir(parents=True)
        os.chmod(cache, mode)
    return setup


def _owned_by_nobody(cache: Path, tmp: Path):
    cache.mkdir(parents=True)
    os.chown(cache, 65534, 65534)


BAD_CACHE_DIRS = {
    "symlink": (_symlinked, "is a symbolic link"),
    "group-writable": (_mode(0o770), "is writable by others (mode 770)"),
    "world-writable": (_mode(0o1777), "is writable by others (mode 1777)"),
    "other-owner": (_owned_by_nobody, "belongs to uid 65534"),
}


@pytest.mark.parametrize("case", BAD_CACHE_DIRS)
def test_unsafe_cache_dir_is_refused_by_mount_and_cache_commands(goesfs_bin, bare, proxy, tmp_path, case):
    if case == "other-owner" and os.geteuid() != 0:
        pytest.skip("needs root to give the directory away")
    setup, message = BAD_CACHE_DIRS[case]
    m = bare()
    setup(m.cache_dir, tmp_path)
    m.path.mkdir(parents=True)
    done = run(goesfs_bin, "mount", str(m.path), "--endpoint", proxy.url, "--cache-dir", str(m.cache_dir),
               "--log-file", str(m.log_file))
    assert message in error_line(done)
    assert mounted_paths(tmp_path) == []
    for command in ("info", "verify", "clear"):
        assert message in error_line(run(goesfs_bin, "cache", command, "--cache-dir", str(m.cache_dir)))


def test_missing_cache_dir_is_created_0700(bare, tmp_path):
    m = bare()
    m.cache_dir = tmp_path / "new" / "cache"
    m.mount()
    assert os.stat(m.cache_dir).st_mode & 0o7777 == 0o700
    (m.path / SMALL.bucket / SMALL.key).read_bytes()
    f = data_file(m.cache_dir, SMALL.bucket, SMALL.key)
    assert os.stat(f).st_mode & 0o777 == 0o600
    assert os.stat(f.parent).st_mode & 0o777 == 0o700
    assert os.stat(m.cache_dir / "lock").st_mode & 0o777 == 0o600


def test_planted_data_file_link_is_never_followed(mount_factory, proxy, victim):
    m = mount_factory()
    path = m.path / SMALL.bucket / SMALL.key
    want = path.read_bytes()
    m.unmount()
    planted = data_file(m.cache_dir, SMALL.bucket, SMALL.key)
    assert planted.exists(), "the layout is not what this test expects"
    planted.unlink()
    planted.symlink_to(victim)
    proxy.reset()
    m.mount()
    assert path.read_bytes() == want
    assert proxy.object_gets(f"/{SMALL.bucket}/{SMALL.key}"), "served without fetching, from where?"
    assert not planted.is_symlink(), "the planted link is still there"
    # `goesfs cache verify` treats a planted link as a stray entry and removes it.
    m.unmount()
    planted.unlink()
    planted.symlink_to(victim)
    done = run(m.binary, "cache", "verify", "--cache-dir", str(m.cache_dir))
    assert not planted.is_symlink(), done.stdout + done.stderr


def test_planted_objects_folder_link_is_never_followed(mount_factory, proxy, tmp_path):
    m = mount_factory()
    m.unmount()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["rm", "-rf", str(m.cache_dir / "objects")], check=True)
    (m.cache_dir / "objects").symlink_to(elsewhere)
    m.mount()
    path = m.path / SMALL.bucket / SMALL.key
    assert len(path.read_bytes()) == SMALL.size
    assert list(elsewhere.iterdir()) == [], "a data file was created through the link"


# --- 2. data files named by SHA-256; older caches upgraded ----------------------------

def fnv_data_file(cache_dir: Path, bucket: str, key: str) -> Path:
    """Where schema 2 kept an object: FNV-1a 64 of bucket NUL key."""
    h = 0xCBF29CE484222325
    for byte in bucket.encode() + b"\0" + key.encode():
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    name = format(h, "016x")
    return cache_dir / "objects" / name[:2] / f"{name}.data"


def test_schema_2_cache_is_upgraded_and_its_blocks_fetched_again(mount_factory, proxy):
    import sqlite3
    m = mount_factory()
    path = m.path / SMALL.bucket / SMALL.key
    want = path.read_bytes()
    m.unmount()
    # Make it look like a schema-2 cache: the object's file under its FNV-1a name, version 2.
    old = fnv_data_file(m.cache_dir, SMALL.bucket, SMALL.key)
    old.parent.mkdir(parents=True, exist_ok=True)
    data_file(m.cache_dir, SMALL.bucket, SMALL.key).rename(old)
    with sqlite3.connect(m.cache_dir / "index.sqlite") as conn:
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    proxy.reset()
    m.mount()
    assert "upgraded the cache index from schema 2 to 4" in m.log_file.read_text(), m.log_tail()
    assert path.read_bytes() == want
    assert proxy.object_gets(f"/{SMALL.bucket}/{SMALL.key}"), "a block of the old naming was served"
    assert not old.exists(), "the old data file was left behind"


# --- 4. numbers on the command line and in the config file --------------------

BAD_NUMBERS = [
    ("--cache-size", "1e30"), ("--cache-size", "99999999T"), ("--cache-size", "-5G"), ("--cache-size", "nan"),
    ("--cache-size", "inf"), ("--cache-size", ""), ("--cache-size", "0"), ("--cache-size", "9223372036854775807K"),
    ("--max-bandwidth", "99999999T"), ("--max-bandwidth", "1e30"), ("--max-bandwidth", "-1"), ("--max-bandwidth", "NaN"),
    ("--max-bandwidth", "inf"), ("--max-bandwidth", ""),
    ("--read-timeout", "inf"), ("--read-timeout", "nan"), ("--read-timeout", "1e30"), ("--read-timeout", "-1"),
    ("--source-cooldown", "inf"), ("--source-cooldown", "-1"), ("--max-connections", "0"),
    ("--max-connections", "99999999999"), ("--retries", "99999999999999999999999"), ("--retries", "-1"),
]


@pytest.mark.parametrize("flag,value", BAD_NUMBERS, ids=[f"{f}={v or 'empty'}" for f, v in BAD_NUMBERS])
def test_bad_numbers_are_one_error_line(goesfs_bin, tmp_path, flag, value):
    (tmp_path / "mnt").mkdir()
    for form in ([f"{flag}={value}"], [flag, value]):
        done = run(goesfs_bin, "mount", str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "cache"), *form)
        error_line(done)
    assert mounted_paths(tmp_path) == []


@pytest.mark.parametrize("line", ['cache_size = 1e30', 'cache_size = "99999999T"', 'cache_size = -5', 'cache_size = ""',
                                  'max_bandwidth = inf', 'max_bandwidth = nan', 'read_timeout = inf', 'retries = -3'])
def test_bad_numbers_in_the_config_file_are_one_error_line(goesfs_bin, tmp_path, line):
    (tmp_path / "mnt").mkdir()
    config = tmp_path / "goesfs.toml"
    config.write_text(line + "\n")
    done = run(goesfs_bin, "mount", str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "cache"), "--config", str(config))
    error_line(done)
    assert mounted_paths(tmp_path) == []


def test_stats_interval_nan_is_one_error_line(goesfs_bin, tmp_path):
    error_line(run(goesfs_bin, "stats", str(tmp_path), "--watch", "--interval", "nan"))


def test_cache_verify_reports_impossible_rows_as_damaged(mount_factory):
    import sqlite3
    m = mount_factory()
    (m.path / SMALL.bucket / SMALL.key).read_bytes()
    m.unmount()
    with sqlite3.connect(m.cache_dir / "index.sqlite") as conn:
        (object_id,) = conn.execute("SELECT id FROM objects WHERE key = ?", (SMALL.key,)).fetchone()
        conn.executemany("INSERT INTO blocks(object_id, block, crc, length) VALUES(?, ?, 0, ?)",
                         [(object_id, 2**62, 100), (object_id, 1000, -5), (object_id, -1, 10)])
    conn.close()
    done = run(m.binary, "cache", "verify", "--cache-dir", str(m.cache_dir))
    assert done.returncode == 1, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    assert f"block {2**62} (dropped)" in done.stdout and "block 1000 (dropped)" in done.stdout, done.stdout
    real = block_count(SMALL.size)  # the blocks reading the file recorded
    assert f"checked {real + 3} blocks: 3 damaged" in done.stdout, done.stdout
    again = run(m.binary, "cache", "verify", "--cache-dir", str(m.cache_dir))
    assert again.returncode == 0 and f"checked {real} blocks: 0 damaged" in again.stdout, again.stdout


# --- 5. and 6. a small or full cache disk -----------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    """Makes small tmpfs mounts (`tmpfs("8M")`); all are unmounted in teardown."""
    made: list[Path] = []

    def make(size: str) -> Path:
        path = tmp_path / f"tmpfs{len(made)}"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        made.append(path)
        return path

    yield make
    for path in made:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_disk(tmpfs):
    """A 1 MiB tmpfs filled to the last byte."""
    path = tmpfs("1M")
    subprocess.run(["dd", "if=/dev/zero", f"of={path / 'fill'}", "bs=64k"], capture_output=True)
    assert os.statvfs(path).f_bavail == 0
    return path


def test_stats_watch_onto_a_full_disk_does_not_trap(full_disk, mount):
    with open(full_disk / "frames", "w") as out:
        done = subprocess.run([mount.binary, "stats", str(mount.path), "--watch", "--count", "2", "--interval", "0.1"],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"


def test_default_cache_cap_never_exceeds_the_free_space(tmpfs, bare):  # tmpfs first: unmounted last
    import json
    disk = tmpfs("8M")
    m = bare()
    m.cache_dir = disk / "cache"
    m.mount()
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    limit = json.loads((m.path / ".stats.json").read_text())["cache"]["limit_bytes"]
    assert 0 < limit <= free, f"cap {limit} on a disk with {free} bytes free"
    assert "cache size cap: 4.0 MiB (a quarter of the" in m.log_file.read_text(), m.log_tail()


def test_explicit_cache_size_above_the_free_space_is_logged(tmpfs, bare):
    m = bare()
    m.cache_dir = tmpfs("8M") / "cache"
    m.mount("--cache-size", "1G")
    assert "cache size cap: 1.0 GiB (--cache-size); only" in m.log_file.read_text(), m.log_tail()


def test_full_cache_disk_is_named_not_a_silent_death(goesfs_bin, proxy, tmp_path, full_disk):
    """The log goes to the full disk too (the default, <cache-dir>/goesfs.log)."""
    (tmp_path / "mnt").mkdir()
    cache = full_disk / "cache"
    done = run(goesfs_bin, "mount", str(tmp_path / "mnt"), "--endpoint", proxy.url, "--cache-dir", str(cache))
    line = error_line(done)
    assert f"the cache disk is full (ENOSPC) at {cache}" in line, line
    assert "exited before mounting" not in line
    assert mounted_paths(tmp_path / "mnt") == []
    # In the foreground the same line reaches stderr (a terminal or a pipe, not the full disk).
    done = run(goesfs_bin, "mount", str(tmp_path / "mnt"), "--endpoint", proxy.url, "--cache-dir", str(cache), "--foreground")
    assert "the cache disk is full (ENOSPC)" in error_line(done)


# --- 3. log and lock files --------------------------------------------------------

@pytest.mark.parametrize("where", ["log-file", "default-log", "foreground"])
def test_log_file_link_is_refused_never_followed(bare, victim, where):
    m = bare()
    m.path.mkdir(parents=True)
    m.cache_dir.mkdir(mode=0o700)
    log = m.cache_dir / "goesfs.log" if where == "default-log" else m.log_file
    log.symlink_to(victim)
    argv = ["mount", str(m.path), "--endpoint", m.endpoint, "--cache-dir", str(m.cache_dir)]
    argv += [] if where == "default-log" else ["--log-file", str(log)]
    argv += ["--foreground"] if where == "foreground" else []
    line = error_line(run(m.binary, *argv))
    assert f"cannot open the log file {log}: it is a symbolic link" in line, line
    assert not m.is_mounted()


def test_lock_file_link_is_refused_never_followed(bare, victim):
    m = bare()
    m.path.mkdir(parents=True)
    m.cache_dir.mkdir(mode=0o700)
    (m.cache_dir / "lock").symlink_to(victim)
    line = error_line(run(m.binary, "mount", str(m.path), "--endpoint", m.endpoint, "--cache-dir", str(m.cache_dir),
                          "--log-file", str(m.log_file)))
    assert "lock" in line and "Too many levels of symbolic links" in line, line
    assert "lock" in error_line(run(m.binary, "cache", "info", "--cache-dir", str(m.cache_dir)))


def test_new_log_file_is_0640(bare):
    m = bare()
    m.mount()
    assert os.stat(m.log_file).st_mode & 0o777 == 0o640


# --- 7. descriptors -----------------------------------------------------------------

def test_soft_descriptor_limit_is_raised_to_the_hard_limit(bare):
    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))
    m = bare()
    m.path.mkdir(parents=True)
    done = run(m.binary, "mount", str(m.path), "--endpoint", m.endpoint, "--cache-dir", str(m.cache_dir),
               "--log-file", str(m.log_file), preexec_fn=low_soft_limit)
    assert done.returncode == 0, done.stderr
    m.pid = int(re.search(r"\(pid (\d+)", done.stdout).group(1))
    limits = Path(f"/proc/{m.pid}/limits").read_text()
    assert re.search(r"Max open files\s+4096\s+4096", limits), limits
    assert "open files: raised the soft limit from 256 to the hard limit 4096" in m.log_file.read_text(), m.log_tail()


# --- 9. credentials in endpoint URLs -------------------------------------------------

def test_credentials_in_source_urls_are_redacted_everywhere(mount_factory, proxy, goesfs_bin):
    """A dead source with credentials first (it fails and is demoted), the proxy second."""
    # A user name no report uses as a word ("reader" is a request priority in "In progress").
    secret_url = "http://qz7user:s3cr3t-pw@127.0.0.1:9"
    m = mount_factory("m", "16,18", "--source", secret_url, "--source", proxy.url, "--source-cooldown", "600")
    (m.path / SMALL.bucket / SMALL.key).read_bytes()
    shown = {name: (m.path / name).read_text() for name in (".stats", ".stats.json", ".diagnostics")}
    shown["log"] = m.log_file.read_text()
    for name, text in shown.items():
        assert "s3cr3t" not in text and "qz7user" not in text, f"{name} shows the credentials:\n{text}"
    assert "http://***@127.0.0.1:9" in shown["log"] and "http://***@127.0.0.1:9" in shown[".stats"], shown[".stats"]
    diagnose = run(goesfs_bin, "diagnose", "--endpoint", secret_url + "/x")
    assert "s3cr3t" not in diagnose.stdout + diagnose.stderr and "***@127.0.0.1:9" in diagnose.stdout, diagnose.stdout
    refused = error_line(run(goesfs_bin, "mount", str(m.path), "--source", "ftp://qz7user:s3cr3t-pw@host/x"))
    assert "s3cr3t" not in refused and "ftp://***@host/x" in refused, refused


# --- 8. the systemd unit -------------------------------------------------------------

UNIT = Path(__file__).resolve().parents[2] / "mount-scripts" / "goesfs@.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("["):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_hardened_without_a_mount_namespace():
    s = unit_settings()
    assert s["User"] == ["goesfs"] and s["LimitNOFILE"] == ["1048576"]
    assert s["CapabilityBoundingSet"] == ["CAP_SYS_ADMIN"] and s["AmbientCapabilities"] == [""]
    assert s["DeviceAllow"] == ["/dev/fuse rw"] and s["DevicePolicy"] == ["closed"]
    assert "AF_UNIX" in s["RestrictAddressFamilies"][0]
    # Each of these gives the service its own mount namespace: the mount would not reach the host.
    for hidden in ("ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths", "PrivateDevices",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups", "ProtectProc",
                   "MountFlags", "TemporaryFileSystem", "BindPaths"):
        assert hidden not in s, f"{hidden}= would keep the FUSE mount inside the service's namespace"


def test_unit_passes_systemd_analyze(tmp_path, goesfs_bin):
    analyze = "/usr/bin/systemd-analyze"
    if not os.path.exists(analyze):
        pytest.skip("systemd-analyze not installed")
    unit = tmp_path / "goesfs@.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/goesfs", goesfs_bin))
    instance = str(tmp_path / "goesfs@mnt-goes.service")
    verify = subprocess.run([analyze, "verify", instance], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", instance], capture_output=True, text=True)
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout).group(1))
    assert level <= 6.0, security.stdout[-2000:]


def test_root_mode_needs_only_cap_sys_admin_and_allows_no_new_privileges(bare):
    """README's root variant: NoNewPrivileges=yes, CapabilityBoundingSet=CAP_SYS_ADMIN, allow_other."""
    m = bare()
    m.path.mkdir(parents=True)
    done = run("setpriv", "--no-new-privs", "--bounding-set=-all,+sys_admin", "--inh-caps=-all", m.binary, "mount",
               str(m.path), "--endpoint", m.endpoint, "--cache-dir", str(m.cache_dir), "--log-file", str(m.log_file),
               "-o", "allow_other")
    assert done.returncode == 0, done.stderr + m.log_tail()
    m.pid = int(re.search(r"\(pid (\d+)", done.stdout).group(1))
    status = Path(f"/proc/{m.pid}/status").read_text()
    assert re.search(r"NoNewPrivs:\s+1", status) and re.search(r"CapBnd:\s+0000000000200000", status), status
    assert len((m.path / SMALL.bucket / SMALL.key).read_bytes()) == SMALL.size


def test_dedicated_user_mode_mounts_through_fusermount3(tmp_path, goesfs_bin, proxy):
    """The unit's mode: an unprivileged user, CAP_SYS_ADMIN left in the bounding set for fusermount3."""
    if os.stat("/dev/fuse").st_mode & 0o006 != 0o006:
        pytest.skip("/dev/fuse is not usable by other users on this machine (it is 0666 on a standard system)")
    nobody = 65534
    mnt, cache = tmp_path / "user-mnt", tmp_path / "user-cache"
    for d in (mnt, cache):
        d.mkdir(mode=0o700)
        os.chown(d, nobody, nobody)
    os.chmod(tmp_path, 0o755)
    done = run("setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "--bounding-set=-all,+sys_admin",
               goesfs_bin, "mount", str(mnt), "--endpoint", proxy.url, "--cache-dir", str(cache),
               "--log-file", str(cache / "log"), cwd="/")
    try:
        assert done.returncode == 0, done.stderr
        assert f"user_id={nobody}" in next(line for line in open("/proc/mounts") if f" {mnt} " in line)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
