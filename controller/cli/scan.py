"""``dlc-guard scan``: judge the workloads in manifests, stdin or a live cluster."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from controller.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    UsageError,
    add_engine_options,
    add_fail_on,
    load_catalog_option,
)
from controller.policyfile import load_policy_file
from controller.registry.resolver import images_of
from controller.registry.setup import resolver_from_args
from controller.scan.core import scan_documents
from controller.scan.output import FORMATS, render
from controller.scan.sources import Document, SourceError, read_sources
from controller.term import use_colour
from policy.evaluate import Engine
from policy.exceptions import EXCEPTION_KIND, load_exceptions
from policy.registries import Mirror
from policy.workloads import BUILTIN_KINDS


def add_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="judge the workloads in manifests or a live cluster",
        description=(
            "Judge every container image of every pod-bearing object in YAML/JSON manifests "
            "(files, directories, '-' for stdin) or, with --cluster, in a live cluster (read-only)."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories; '-' reads stdin")
    p.add_argument("--cluster", action="store_true", help="scan the cluster of the current kubeconfig context")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument(
        "--namespace",
        "-n",
        metavar="NS",
        help="with --cluster: only this namespace; with files: namespace for objects that name none",
    )
    p.add_argument("--all-namespaces", "-A", action="store_true", help="with --cluster: every namespace")
    p.add_argument("--policy", metavar="FILE", help="policy document (levels, exemptions, mirrors, custom kinds)")
    p.add_argument(
        "--exceptions",
        metavar="FILE",
        action="append",
        default=[],
        help="DLCGuardException documents to honour (repeatable); with --cluster the cluster's are read too. "
        "Exceptions inside the scanned manifests are never honoured: they grant nothing until admitted",
    )
    add_engine_options(p)
    p.set_defaults(warn_days=None)
    p.add_argument("--output", "-o", choices=tuple(FORMATS), default="table", help="output format (default table)")
    add_fail_on(p)
    p.set_defaults(func=cmd_scan)


def _cluster_items(args: argparse.Namespace, kinds: Iterable[str], stderr: TextIO) -> Iterator[Document | SourceError]:
    from controller.scan.cluster import ClusterError, connect, current_namespace, list_objects, terminal_progress

    try:
        src = connect(args.kubeconfig, args.context)
    except ClusterError as exc:
        yield SourceError("cluster", str(exc))
        return
    namespace = None if args.all_namespaces else (args.namespace or current_namespace(args.kubeconfig, args.context))
    progress = terminal_progress(stderr)
    yield from list_objects(src, kinds, namespace, progress)
    if progress is not None:
        stderr.write("\r\033[K")


def cmd_scan(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if args.cluster and args.paths:
        raise UsageError("give either PATHs or --cluster, not both")
    if not args.cluster and not args.paths:
        raise UsageError("nothing to scan: give PATHs ('-' for stdin) or --cluster")
    if args.all_namespaces and args.namespace:
        raise UsageError("--namespace and --all-namespaces exclude each other")
    policy = load_policy_file(args.policy)
    catalog = load_catalog_option(args.catalog)
    as_of = args.as_of or dt.datetime.now(dt.UTC).date()
    warn_days = args.warn_days if args.warn_days is not None else policy.warn_days
    mirrors = (*policy.mirrors, *(Mirror(m) for m in args.mirror))
    resolver = resolver_from_args(args)
    engine = Engine(
        catalog,
        as_of,
        warn_days,
        mirrors,
        digests=resolver.book if resolver else None,
        anaconda_notice=policy.anaconda_notice != "off" and not args.no_anaconda_notice,
    )
    kinds = [*BUILTIN_KINDS, *policy.custom_kinds, *([EXCEPTION_KIND] if args.cluster else [])]
    items: Iterable[Document | SourceError] = (
        _cluster_items(args, kinds, stderr) if args.cluster else read_sources(args.paths, stdin)
    )
    granted: list[Any] = []
    problems: list[SourceError] = []
    for path in args.exceptions:
        for item in read_sources([path], stdin):
            if isinstance(item, SourceError):
                problems.append(item)
            elif item.obj.get("kind") == EXCEPTION_KIND:
                granted.append(item.obj)
    if args.cluster:  # the cluster's own exceptions: they exist, so RBAC let someone grant them
        items = list(items)
        granted += [i.obj for i in items if isinstance(i, Document) and i.obj.get("kind") == EXCEPTION_KIND]
        items = [i for i in items if not (isinstance(i, Document) and i.obj.get("kind") == EXCEPTION_KIND)]
    exceptions, rejected = load_exceptions(granted)
    problems += [SourceError("exceptions", why) for why in rejected]
    policy = policy.with_exceptions(exceptions)
    items = [*problems, *items] if problems else items
    if resolver is not None:  # look every digest up first, then judge
        items = list(items)
        resolver.resolve_all(engine, images_of(items, policy))
        resolver.close()
    result = scan_documents(items, engine, policy, as_of, default_namespace=args.namespace or "default")
    render(args.output, result, stdout, use_colour(stdout), args.fail_on)
    if result.failing(args.fail_on):
        return EXIT_FAIL
    return EXIT_USAGE if result.errors else EXIT_OK
