"""The site cache tier (mount-scripts/goesfs-site-cache: nginx slice cache) for the e2e tests.

Started through the script itself, on a free loopback port, with its cache, config, pid file
and logs in a directory of the test's own; stopped (by its pid file, through the script) when
the test ends. Its pid is also recorded under $GOESFS_TEST_STATE, so scripts/test's EXIT trap
stops it if pytest dies.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import process_gone, wait_for
from tests.support.s3server import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "mount-scripts" / "goesfs-site-cache"


def nginx_path() -> str | None:
    """nginx, where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class AccessLine:
    """One line of the cache's access log (log_format goes in the template)."""
    request: str
    status: int
    cache: str  # HIT, MISS, … or "-"

    @property
    def is_listing(self) -> bool:
        return "list-type=" in self.request


LINE = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d{3}) \d+ range="[^"]*" cache=(?P<cache>\S+)')


class SiteCache:
    def __init__(self, root: Path, upstream: str, max_size: str = "1G"):
        self.root, self.upstream, self.max_size = root, upstream, max_size
        self.state_dir, self.cache_dir = root / "state", root / "cache"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pid: int | None = None
        state = os.environ.get("GOESFS_TEST_STATE")
        self.pid_record = Path(state) / f"nginx-{os.getpid()}-{self.port}.pid" if state else None

    @property
    def access_log(self) -> Path:
        return self.state_dir / "access.log"

    def script(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args, "--state-dir", str(self.state_dir)],
                              capture_output=True, text=True, timeout=60)

    def start(self) -> "SiteCache":
        # As root nginx's workers take another user; the test's own can reach its temp dirs.
        done = self.script("--listen", f"127.0.0.1:{self.port}", "--cache-dir", str(self.cache_dir),
                           "--max-size", self.max_size, "--upstream", self.upstream,
                           "--user", pwd.getpwuid(os.geteuid()).pw_name)
        assert done.returncode == 0, f"goesfs-site-cache failed: {done.stdout}{done.stderr}\n{self.error_log()}"
        self.pid = int(re.search(r"\(pid (\d+)", done.stdout).group(1))
        if self.pid_record:
            self.pid_record.write_text(f"{self.pid}\n")
        return self

    def stop(self) -> None:
        """Stop through the script (SIGTERM to the master, waits for its exit)."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        done = self.script("--stop")
        if not process_gone(pid):  # the script failed: do it by pid
            os.kill(pid, 15)
        wait_for(lambda: process_gone(pid), 15, f"nginx pid {pid} to exit ({done.stdout}{done.stderr})")
        if self.pid_record:
            self.pid_record.unlink(missing_ok=True)

    def lines(self) -> list[AccessLine]:
        try:
            text = self.access_log.read_text()
        except FileNotFoundError:
            return []
        return [AccessLine(m["request"], int(m["status"]), m["cache"])
                for m in map(LINE.search, text.splitlines()) if m]

    def error_log(self) -> str:
        try:
            return "\n".join((self.state_dir / "error.log").read_text().splitlines()[-30:])
        except FileNotFoundError:
            return "(no error log)"

    def __enter__(self) -> "SiteCache":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
