"""Bounded polling: the tests' only way to wait for something (never a bare sleep)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar, Union

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float,
             what: Union[str, Callable[[], str]], interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` s.
    `what` says what was awaited: a string, or a function giving details at failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts as gone: the daemon is not our child)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
