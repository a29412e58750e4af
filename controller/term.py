"""Terminal colours for the CLI's tables: only on a TTY, and never with ``NO_COLOR`` set."""

from __future__ import annotations

import os
from typing import TextIO

__all__ = ["BOLD", "COLOURS", "RESET", "use_colour"]

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
