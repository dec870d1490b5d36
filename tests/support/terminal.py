"""Run a command on a pseudo-terminal and capture everything it wrote there.

`goesfs stats --watch` draws differently on a terminal (cursor-home, erase-line)
than on a pipe, so the terminal case needs a real pty, not a captured pipe.
"""

from __future__ import annotations

import fcntl
import re
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_pty(cmd: list[str], timeout: float, rows: int = 24, cols: int = 100) -> tuple[int, str]:
    """(exit code, output) of `cmd` run with stdout and stderr on a fresh pty."""
    master, slave = pty.openpty()
    # A fixed window size so the bar layout does not depend on the caller's terminal.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)  # ours; the child keeps its copy, so EOF comes when it exits
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        else:
            raise AssertionError(f"{cmd} still running after {timeout}s; output so far:\n"
                                 f"{out.decode(errors='replace')}")
        return proc.wait(timeout=5), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


class PtyProcess:
    """A command running on a pty while the test does other things; `poll_output` collects
    what it drew, each chunk with the time it arrived (for frames drawn over time)."""

    def __init__(self, cmd: list[str], rows: int = 24, cols: int = 100):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.chunks: list[tuple[float, str]] = []

    def poll_output(self, wait: float = 0.1) -> None:
        """Reads what is there (waiting at most `wait` s for something)."""
        while True:
            ready, _, _ = select.select([self.master], [], [], wait)
            if not ready:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self.chunks.append((time.monotonic(), chunk.decode(errors="replace")))
            wait = 0

    @property
    def text(self) -> str:
        return "".join(c for _, c in self.chunks)

    def frames(self) -> list[tuple[float, str]]:
        """(arrival time, text) of each screen drawn with cursor-home, escapes removed."""
        frames, current, at = [], "", None
        for t, chunk in self.chunks:
            parts = chunk.split("\x1b[H")
            current += parts[0]
            for part in parts[1:]:
                if at is not None:
                    frames.append((at, current))
                current, at = part, t
        if at is not None:
            frames.append((at, current))
        clean = lambda s: re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s).replace("\r", "")  # noqa: E731
        return [(t, clean(f)) for t, f in frames]

    def close(self) -> int:
        """Stops the command (if still running) and returns its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.poll_output(wait=0)
        os.close(self.master)
        return self.proc.returncode
