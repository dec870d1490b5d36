"""Run a command on a pseudo-terminal and capture everything it wrote there.

`goesfs stats --watch` draws differently on a terminal (cursor-home, erase-line)
than on a pipe, so the terminal case needs a real pty, not a captured pipe.
"""

from __future__ import annotations

import fcntl
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
