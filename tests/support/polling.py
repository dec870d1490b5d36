"""Bounded polling: the tests' only way to wait for something (never a bare sleep)."""

from __future__ import annotations

import time
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
