"""Terminal colours for the CLI's tables: only on a TTY, and never with ``NO_COLOR`` set."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TextIO

from policy.evaluate import Reason

__all__ = ["BOLD", "COLOURS", "RESET", "notice_footer", "use_colour"]

COLOURS = {
    "unsupported": "\033[31;1m",
    "unknown": "\033[35m",
    "invalid": "\033[35m",
    "outdated": "\033[33m",
    "expiring": "\033[33m",
    "supported": "\033[32m",
    "exempt": "\033[36m",
    "not-dlc": "\033[2m",
}
RESET, BOLD = "\033[0m", "\033[1m"


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def notice_footer(per_image: Iterable[Sequence[Reason]]) -> str:
    """The notices of a run, once each with the number of images they concern (tables)."""
    seen: dict[str, tuple[Reason, int]] = {}
    for notices in per_image:
        for n in notices:
            seen[n.code] = (n, seen.get(n.code, (n, 0))[1] + 1)
    out = []
    for n, count in seen.values():
        out.append(f"note ({n.code}, {count} {'image' if count == 1 else 'images'}): {n.message}\n")
    return "".join(out)
