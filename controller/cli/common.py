"""What every ``dlc-guard`` subcommand shares: exit codes, argument types, the engine options.

The subcommand modules (:mod:`controller.cli.catalog`, :mod:`controller.cli.scan`) and
:mod:`controller.cli.main` all import from here, and none of them from each other.
"""

from __future__ import annotations

import argparse
import datetime as dt

from controller.registry.resolver import DigestResolver
from controller.registry.setup import add_registry_options
from policy.catalog import Catalog, default_catalog, load_catalog_file
from policy.evaluate import Engine
from policy.registries import DEFAULT_PULL_THROUGH, Mirror

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_USAGE",
    "FAIL_LEVELS",
    "Subparsers",
    "UsageError",
    "add_engine_options",
    "add_fail_on",
    "date_arg",
    "engine_from_args",
    "load_catalog_option",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
]

Subparsers = argparse._SubParsersAction

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
FAIL_LEVELS = ("unsupported", "unknown", "outdated", "expiring", "never")


class UsageError(Exception):
    """A command line that cannot be carried out (exit 2, with the message)."""


def date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value


def positive_int(text: str) -> int:
    value = nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be one or more")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number, zero or more")
    return value


def positive_float(text: str) -> float:
    value = nonneg_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return value


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as-of", type=date_arg, default=None, metavar="YYYY-MM-DD", help="judge as on this date (default: today, UTC)"
    )
    p.add_argument(
        "--warn-days",
        type=nonneg_int,
        default=60,
        metavar="N",
        help="end of patch within N days makes an image 'expiring' (default 60)",
    )
    p.add_argument("--catalog", metavar="FILE", help="catalog file (default: the embedded catalog)")
    p.add_argument(
        "--no-anaconda-notice",
        action="store_true",
        help="leave out the Anaconda licence notice (ANACONDA_LICENSE) on images no longer maintained",
    )
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="PREFIX",
        help="registry prefix that mirrors DLC repositories (repeatable)",
    )
    add_registry_options(p)


def add_fail_on(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-on",
        choices=FAIL_LEVELS,
        default="unsupported",
        help="exit 1 when a verdict is at least this severe (default unsupported)",
    )


def load_catalog_option(path: str | None) -> Catalog:
    return default_catalog() if path is None else load_catalog_file(path)


def engine_from_args(args: argparse.Namespace, resolver: DigestResolver | None = None) -> Engine:
    catalog = load_catalog_option(args.catalog)
    as_of = args.as_of or dt.datetime.now(dt.UTC).date()
    book = resolver.book if resolver is not None else None
    mirrors = (*(Mirror(m) for m in args.mirror), *DEFAULT_PULL_THROUGH)
    return Engine(catalog, as_of, args.warn_days, mirrors, digests=book, anaconda_notice=not args.no_anaconda_notice)
