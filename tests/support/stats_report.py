"""Parsing the `.stats` text report (every figure: docs/STATS-FORMAT.md) for tests."""

from __future__ import annotations

import re

COUNT_NAMES = ("Total attempts", "Successful", "Failed", "Retries", "Not found errors",
               "Auth errors", "Timeouts", "Network errors", "Server errors", "Changed at the source")
# The same figures in .stats.json's "performance" object.
JSON_COUNT_NAMES = dict(zip(COUNT_NAMES, (
    "total_attempts", "successful", "failed", "retries", "not_found_errors",
    "auth_errors", "timeouts", "network_errors", "server_errors", "changed_errors")))
LISTING_NAMES = ("Listing requests", "Listing successes", "Listing failures", "Listing retries")

IN_PROGRESS_LINE = re.compile(r"^\d+\. (?P<key>.+): (?P<done>\d+) / (?P<total>\d+) bytes "
                              r"\((?P<percent>[\d.]+)%\), (?P<rest>.+)$")


def field(text: str, name: str) -> str:
    """The value after `name: ` on its own line."""
    m = re.search(rf"^{re.escape(name)}: (.*)$", text, re.MULTILINE)
    assert m, f"no '{name}' in .stats:\n{text}"
    return m[1]


def count(text: str, name: str) -> int:
    m = re.match(r"\d+", field(text, name))
    assert m, f"'{name}' is not a count in .stats:\n{text}"
    return int(m[0])


def counts(text: str) -> dict[str, int]:
    return {n: count(text, n) for n in COUNT_NAMES}


def section(text: str, title: str) -> list[str]:
    """The lines of a section: after the `title:` line, up to the next blank line."""
    lines = text.splitlines()
    assert f"{title}:" in lines, f"no '{title}:' section in .stats:\n{text}"
    body = []
    for line in lines[lines.index(f"{title}:") + 1:]:
        if not line.strip():
            break
        body.append(line)
    return body


def in_progress(text: str) -> list[re.Match]:
    """The In progress lines as matches (key, done, total, rest = speed and ETA)."""
    lines = [l for l in section(text, "In progress") if re.match(r"\d+\. ", l)]
    matches = [IN_PROGRESS_LINE.match(l) for l in lines]
    assert all(matches), f"unparsable In progress lines: {lines}"
    return matches


def numbered(text: str, title: str) -> list[str]:
    """The `N. …` entries of a list section (Recent errors, Recent download attempts)."""
    return [l for l in section(text, title) if re.match(r"\d+\. ", l)]


def check_consistent(text: str) -> None:
    """What must hold in any one snapshot, whenever it was taken."""
    assert text.startswith("S3 Download Statistics:\n"), text[:200]
    assert text.count("S3 Download Statistics:") == 1, text
    c = counts(text)
    assert c["Successful"] + c["Failed"] == c["Total attempts"], c
    failures = sum(c[n] for n in COUNT_NAMES[4:])
    assert failures == c["Failed"], c
    listings = {n: count(text, n) for n in LISTING_NAMES}
    assert listings["Listing successes"] + listings["Listing failures"] == listings["Listing requests"], listings
    for m in in_progress(text):
        assert int(m["done"]) <= int(m["total"]), m[0]
    assert "Time since last successful download:" in text.splitlines()[-1], text[-300:]
