"""The ``dlc-guard`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from controller.cli import catalog as catalog_cli
from controller.cli import scan as scan_cli
from controller.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_engine_options,
    add_fail_on,
    date_arg,
    engine_from_args,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
)
from controller.registry.setup import AuthConfigError, add_registry_options, resolver_from_args
from controller.term import COLOURS, RESET, notice_footer, use_colour
from controller.webhook.limits import Limits
from policy.catalog import CatalogError, default_catalog
from policy.evaluate import RANK, Result
from policy.policy import PolicyError
from policy.report import REPORT_APIS


class VersionAction(argparse.Action):
    """``--version``: the package and the embedded catalog (read only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            mine = version("dlc-guard")
        except PackageNotFoundError:  # a source tree that was never installed
            mine = "unknown"
        src = default_catalog().source
        commit = str(src.get("commit") or "")[:12]
        sys.stdout.write(f"dlc-guard {mine}, catalog {src.get('location')}@{commit} of {src.get('date')}\n")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlc-guard",
        description="Judge AWS Deep Learning Containers images against the framework support policy.",
    )
    parser.add_argument("--version", action=VersionAction, help="the version and the embedded catalog's source")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="judge image references",
        description="Judge image references; '-' reads them from stdin, one per line.",
    )
    check.add_argument("images", nargs="+", metavar="IMAGE", help="image references ('-': one per line from stdin)")
    add_engine_options(check)
    check.add_argument(
        "--output", "-o", choices=("table", "json"), default="table", help="output format (default table)"
    )
    add_fail_on(check)
    check.set_defaults(func=cmd_check)

    scan_cli.add_parser(sub)
    catalog_cli.add_parser(sub)

    wh = sub.add_parser("webhook", help="serve the validating admission webhook over HTTPS")
    wh.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    wh.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    wh.add_argument("--tls-cert", metavar="FILE", help="serving certificate (reloaded when it changes)")
    wh.add_argument("--tls-key", metavar="FILE", help="its key")
    wh.add_argument(
        "--tls-secret",
        metavar="NAME",
        help="serve the certificate of this kubernetes.io/tls Secret in --namespace, followed through the API "
        "(instead of --tls-cert/--tls-key)",
    )
    wh.add_argument("--mode", choices=("enforce", "warn", "audit"), default=None, help="override the policy's mode")
    source = wh.add_mutually_exclusive_group()
    source.add_argument("--policy", metavar="FILE", help="policy document (YAML); reloaded when it changes")
    source.add_argument(
        "--policy-resource",
        metavar="NAME",
        help="follow this DLCGuardPolicy resource through the Kubernetes API (changes apply within seconds)",
    )
    wh.add_argument("--catalog", metavar="FILE", help="catalog file; reloaded when it changes")
    wh.add_argument("--warn-days", type=nonneg_int, default=None, metavar="N", help="override the policy's warnDays")
    wh.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="the controller's own namespace (exempt); default $POD_NAMESPACE",
    )
    wh.add_argument(
        "--as-of", type=date_arg, default=None, metavar="YYYY-MM-DD", help="fixed evaluation date (tests, replays)"
    )
    wh.add_argument("--log-denies", action="store_true", help="log every deny and warn decision (JSON lines)")
    wh.add_argument(
        "--watch-namespaces",
        action="store_true",
        help="watch namespace labels through the Kubernetes API (for namespaceSelector exemptions)",
    )
    wh.add_argument(
        "--watch-exceptions",
        action="store_true",
        help="follow the cluster's DLCGuardException resources (exemptions granted through RBAC)",
    )
    wh.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for --watch-namespaces, --watch-exceptions and --policy-resource "
        "(default: $KUBECONFIG, in-cluster)",
    )
    wh.add_argument(
        "--catalog-refresh-minutes",
        type=float,
        default=60.0,
        help="with --policy-resource: fetch the policy's catalog source this often (default 60)",
    )
    add_registry_options(wh)
    wh.add_argument(
        "--digest-budget",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="longest a review waits for a registry (default 1); later reviews use the answer",
    )
    wh.add_argument(
        "--digest-configmap",
        metavar="NAME",
        help="read the operator's digest answers from this ConfigMap in --namespace",
    )
    wh.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require the API server's client certificate, signed by this CA, on /validate and /mutate",
    )
    limits = wh.add_argument_group("connection limits (see README: Webhook under load)")
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=Limits.max_connections,
        metavar="N",
        help=f"open connections at most; at the cap the longest-waiting idle one is closed "
        f"(default {Limits.max_connections})",
    )
    limits.add_argument(
        "--body-budget",
        type=positive_int,
        default=Limits.body_bytes >> 20,
        metavar="MIB",
        help=f"request bodies held at once, read or being judged; beyond, 503 (default {Limits.body_bytes >> 20})",
    )
    for flag, field, what in (
        ("--header-timeout", "header_seconds", "from a connection's first byte to complete request headers"),
        ("--body-timeout", "body_seconds", "to receive a request body"),
        ("--idle-timeout", "idle_seconds", "before an idle keep-alive connection is closed"),
    ):
        default = getattr(Limits, field)
        help_text = f"{what} (default {default:g})"
        limits.add_argument(flag, type=positive_float, default=default, metavar="SECONDS", help=help_text)
    wh.add_argument(
        "--drain-seconds",
        type=nonneg_float,
        default=5.0,
        metavar="SECONDS",
        help="after SIGTERM: unready but still answering this long, then stop (default 5)",
    )
    wh.set_defaults(func=cmd_webhook)

    op = sub.add_parser(
        "operator",
        help="keep PolicyReports, annotations and Events true for the whole cluster (kopf)",
    )
    op.add_argument(
        "--namespace", "-n", action="append", default=[], metavar="NS", help="watch only these (repeatable)"
    )
    op.add_argument("--policy-name", default="default", help="the DLCGuardPolicy resource to follow (default: default)")
    op.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    op.add_argument("--peering", metavar="NAME", help="kopf peering name for HA (only one instance works at a time)")
    op.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        metavar="SECONDS",
        help="how long a silent peer counts as alive: a killed replica's standby takes over after this (default 60)",
    )
    op.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: none)")
    op.add_argument(
        "--liveness-port", type=int, default=0, help="serve kopf's liveness probe at :PORT/healthz (0: none)"
    )
    op.add_argument("--reevaluate-hours", type=float, default=24.0, help="re-judge everything this often (default 24)")
    op.add_argument("--catalog-refresh-minutes", type=float, default=60.0, help="refresh the catalog this often")
    op.add_argument("--as-of", type=date_arg, default=None, metavar="YYYY-MM-DD", help="fixed evaluation date (tests)")
    op.add_argument(
        "--controller-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="the controller's own namespace (exempt); default $POD_NAMESPACE",
    )
    add_registry_options(op)
    op.add_argument(
        "--digest-configmap",
        metavar="NAME",
        help="publish digest answers in this ConfigMap of --controller-namespace for the webhook",
    )
    rep = op.add_argument_group("reports (one per workload)")
    rep.add_argument(
        "--reports",
        choices=REPORT_APIS,
        default="auto",
        help="which report API to write: wgpolicyk8s.io PolicyReports, openreports.io Reports, both, or "
        "auto: each of them the cluster serves (default)",
    )
    rep.add_argument(
        "--report-writes-per-second",
        type=positive_float,
        default=50.0,
        metavar="N",
        help="pace of report writes, so a change to every workload drains instead of flooding the API (default 50)",
    )
    rep.add_argument(
        "--report-burst", type=positive_int, default=50, metavar="N", help="writes allowed at once (default 50)"
    )
    rep.add_argument(
        "--report-concurrency", type=positive_int, default=4, metavar="N", help="writes in flight (default 4)"
    )
    tls = op.add_argument_group("the webhook's certificate (kept by the active replica)")
    tls.add_argument(
        "--tls-secret",
        metavar="NAME",
        help="keep this kubernetes.io/tls Secret of --controller-namespace: a CA of its own, the serving "
        "certificate, renewals and CA switches",
    )
    tls.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name or IP of the certificate (repeatable)",
    )
    tls.add_argument(
        "--webhook-configuration",
        action="append",
        default=[],
        metavar="NAME",
        help="a Validating/MutatingWebhookConfiguration whose caBundle follows (repeatable)",
    )
    for flag, default, what in (
        ("--tls-validity-hours", 90 * 24.0, "serving certificate lifetime"),
        ("--tls-renew-hours", 30 * 24.0, "re-issue the serving certificate this long before it expires"),
        ("--ca-validity-hours", 3650 * 24.0, "CA lifetime"),
        ("--ca-renew-hours", 365 * 24.0, "stage the next CA this long before the CA expires"),
    ):
        tls.add_argument(
            flag, type=positive_float, default=default, metavar="HOURS", help=f"{what} (default {default:g})"
        )
    tls.add_argument(
        "--tls-check-seconds", type=positive_float, default=30.0, metavar="SECONDS", help="how often (default 30)"
    )
    op.set_defaults(func=cmd_operator)
    return parser


def read_images(items: Sequence[str], stdin: TextIO) -> list[str]:
    out: list[str] = []
    for item in items:
        if item == "-":
            out.extend(line.strip() for line in stdin if line.strip() and not line.lstrip().startswith("#"))
        else:
            out.append(item)
    return out


def failing(results: Sequence[Result], level: str) -> bool:
    """Whether any result fails at ``level``; an invalid reference fails at every level but
    ``never`` (nothing can run it, and it is usually a typo worth stopping for)."""
    if level == "never":
        return False
    return any(r.verdict == "invalid" or (r.verdict != "not-dlc" and RANK[r.verdict] >= RANK[level]) for r in results)


def render_table(results: Sequence[Result], stream: TextIO, colour: bool) -> None:
    headers = ("VERDICT", "IMAGE", "FRAMEWORK", "EOP", "WHY")
    rows = [
        (
            r.verdict,
            r.image,
            f"{r.framework} {r.version}" if r.framework and r.version else (r.framework or "-"),
            r.eop.isoformat() if r.eop else "-",
            r.summary,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]

    def line(cells: Sequence[str], verdict: str | None = None) -> str:
        parts = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)]
        if colour and verdict is not None:
            parts[0] = f"{COLOURS.get(verdict, '')}{parts[0]}{RESET}"
        return "  ".join([*parts, cells[-1]]).rstrip()

    stream.write(line(headers) + "\n")
    for r, row in zip(results, rows, strict=True):
        stream.write(line(row, r.verdict) + "\n")
        if r.recommendation:
            stream.write(f"{'':{widths[0]}}  -> use {r.recommendation}\n")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    order = ("unsupported", "unknown", "invalid", "outdated", "expiring", "supported", "not-dlc")
    stream.write("\n" + ", ".join(f"{counts[v]} {v}" for v in order if v in counts) + "\n")
    stream.write(notice_footer(r.notices for r in results))


def cmd_check(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    images = read_images(args.images, stdin)
    if not images:
        raise UsageError("no image references given")
    resolver = resolver_from_args(args)
    engine = engine_from_args(args, resolver)
    if resolver is not None:
        resolver.resolve_all(engine, images)
        resolver.close()
    results = engine.evaluate_many(images)
    if args.output == "json":
        json.dump([r.to_dict() for r in results], stdout, indent=2)
        stdout.write("\n")
    else:
        render_table(results, stdout, use_colour(stdout))
    return EXIT_FAIL if failing(results, args.fail_on) else EXIT_OK


def cmd_webhook(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    import logging

    from controller.logs import configure_logging
    from controller.webhook.server import WebhookSettings, serve

    configure_logging(logging.INFO)
    if bool(args.tls_cert) != bool(args.tls_key) or bool(args.tls_cert) == bool(args.tls_secret):
        raise UsageError("give --tls-cert and --tls-key, or --tls-secret")
    settings = WebhookSettings(
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        mode=args.mode,
        policy_file=args.policy,
        catalog_file=args.catalog,
        warn_days=args.warn_days,
        namespace=args.namespace,
        watch_namespaces=args.watch_namespaces,
        watch_exceptions=args.watch_exceptions,
        log_denies=args.log_denies,
        kubeconfig=args.kubeconfig,
        policy_resource=args.policy_resource,
        as_of=args.as_of,
        resolver=resolver_from_args(args),
        digest_budget=args.digest_budget,
        digest_configmap=args.digest_configmap,
        catalog_refresh_seconds=args.catalog_refresh_minutes * 60,
        client_ca=args.client_ca,
        tls_secret=args.tls_secret,
        drain_seconds=args.drain_seconds,
        limits=Limits(
            max_connections=args.max_connections,
            header_seconds=args.header_timeout,
            body_seconds=args.body_timeout,
            idle_seconds=args.idle_timeout,
            body_bytes=args.body_budget << 20,
        ),
    )
    serve(settings)
    return EXIT_OK


def cmd_operator(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    import logging

    from controller.logs import configure_logging
    from controller.operator.handlers import OperatorSettings, run
    from controller.operator.reports import ReportSettings

    configure_logging(logging.INFO)
    run(
        OperatorSettings(
            namespaces=args.namespace,
            policy_name=args.policy_name,
            controller_namespace=args.controller_namespace,
            kubeconfig=args.kubeconfig,
            as_of=args.as_of,
            reevaluate_seconds=args.reevaluate_hours * 3600,
            catalog_refresh_seconds=args.catalog_refresh_minutes * 60,
            peering=args.peering,
            metrics_port=args.metrics_port or None,
            liveness_port=args.liveness_port or None,
            peering_lifetime=args.peering_lifetime,
            resolver=resolver_from_args(args),
            digest_configmap=args.digest_configmap,
            cert_keeper=keeper_settings(args),
            cert_seconds=args.tls_check_seconds,
            reports=ReportSettings(
                apis=args.reports,
                writes_per_second=args.report_writes_per_second,
                burst=args.report_burst,
                concurrency=args.report_concurrency,
            ),
        )
    )
    return EXIT_OK


def keeper_settings(args: argparse.Namespace) -> Any:
    """The operator's certificate keeping, from its flags (``None`` without --tls-secret)."""
    if not args.tls_secret:
        return None
    import datetime as _dt

    from controller.certs import Validity
    from controller.kube.certkeeper import KeeperSettings

    if not args.controller_namespace or not args.tls_name:
        raise UsageError("--tls-secret needs --controller-namespace and at least one --tls-name")
    hours = _dt.timedelta(hours=1)
    validity = Validity(
        serving=args.tls_validity_hours * hours,
        serving_renew_before=args.tls_renew_hours * hours,
        ca=args.ca_validity_hours * hours,
        ca_renew_before=args.ca_renew_hours * hours,
    )
    if validity.serving_renew_before >= validity.serving or validity.ca_renew_before >= validity.ca:
        raise UsageError("renew before expiry must be shorter than the validity")
    return KeeperSettings(
        args.controller_namespace,
        args.tls_secret,
        tuple(args.tls_name),
        tuple(args.webhook_configuration),
        validity,
        settle=_dt.timedelta(seconds=min(60.0, 2 * args.tls_check_seconds)),
    )


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args, stdin, stdout, stderr))
    except CatalogError as exc:
        stderr.write(f"dlc-guard: {exc}\n")
        return EXIT_USAGE
    except PolicyError as exc:
        stderr.write(f"dlc-guard: {exc}\n")
        return EXIT_USAGE
    except AuthConfigError as exc:
        stderr.write(f"dlc-guard: {exc}\n")
        return EXIT_USAGE
    except UsageError as exc:
        stderr.write(f"dlc-guard: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
