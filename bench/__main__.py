"""``python -m bench [--quick] [--hostile] [--json]``: run every benchmark, print one JSON object
(or a summary) and write a Markdown summary to ``bench/results/summary.md``. ``--hostile`` runs
the hostile-load figures alone (:mod:`bench.hostile`); ``make bench`` runs both."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench import hostile, operator, reports, resolve, webhook

TARGETS = {
    "ratio": (">=", 0.8),
    "p99_ms": ("<=", 5.0),
    "warm_refs_per_s": (">=", 200_000),
    "unchanged_writes": ("<=", 0),
    "catalog_writes_over_changed": ("<=", 1.0),
    "operator_rss_mb": ("<=", 1024.0),
}
"""operator_rss_mb: the chart's memory limit for the operator (values.yaml operator.resources)."""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def checks(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values = {
        "ratio": figures["webhook"]["ratio"],
        "p99_ms": figures["webhook"]["p99_ms"],
        "warm_refs_per_s": figures["resolve"]["warm_refs_per_s"],
        "unchanged_writes": sum(
            p["writes"] for name, p in figures["reports"]["phases"].items() if "nothing changed" in name
        ),
        "catalog_writes_over_changed": round(
            figures["reports"]["phases"]["catalog change ending one line early"]["writes"]
            / max(1, figures["reports"]["changed_by_catalog"]),
            3,
        ),
        "operator_rss_mb": figures["operator"]["rss_mb"],
    }
    out = {}
    for key, (op, target) in TARGETS.items():
        v = values[key]
        out[key] = {"value": v, "target": f"{op} {target}", "met": v >= target if op == ">=" else v <= target}
    return out


def markdown(f: dict[str, Any]) -> str:
    r, w, p, o = f["resolve"], f["webhook"], f["reports"], f["operator"]
    quick = " (quick run)" if f["quick"] else ""
    lines = [
        f"Measured {f['date']} on {f['machine']} ({f['cpus']} CPUs), {f['python']}{quick}.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| resolve+evaluate, warm cache | {r['warm_refs_per_s']:,} refs/s | ≥ 200,000 |",
        f"| resolve+evaluate, cold cache | {r['cold_refs_per_s']:,} refs/s | |",
        f"| resolve+evaluate, uncached | {r['uncached_refs_per_s']:,} refs/s | |",
        f"| webhook saturation (one core) | {w['webhook_rps']:,} reviews/s | |",
        f"| bare aiohttp TLS floor (one core) | {w['baseline_rps']:,} reviews/s | |",
        f"| ratio webhook / floor | {w['ratio']} | ≥ 0.8 |",
        f"| latency at {w['fixed_rate']} reviews/s, p50 / p99 | {w['p50_ms']} / {w['p99_ms']} ms | p99 ≤ 5 ms |",
        "",
        f"Reports of {p['workloads']:,} workloads in {p['reports']:,} reports (the writer's part in process,"
        f" bench/reports.py; peak memory {p['peak_mb']} MB):",
        "",
        "| event | report writes | MB sent | seconds |",
        "|---|---|---|---|",
        *[f"| {name} | {x['writes']:,} | {x['mb']} | {x['seconds']} |" for name, x in p["phases"].items()],
        "",
        f"The catalog change ends PyTorch 2.10 early: {p['flipped']:,} workloads run it (10%) and change"
        f" verdict; {p['changed_by_catalog']:,} reports change in all (the others' recommendations pointed"
        " at it). Target: zero writes when nothing changed, and writes = reports changed.",
        "",
        f"The real operator (bench/operator.py) with {o['workloads']:,} workloads on a real API server:"
        f" RSS {o['rss_mb']} MB once every workload is judged and reported ({o['rss_mb_start']} MB at start;"
        f" target ≤ 1024, the chart's limit), {o['report_writes']:,} report writes, {o['failed_writes']} failed,"
        f" settled in {o['settle_s']} s at 1,000 writes/s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (about two minutes: the operator with 5,000 workloads, not 50,000)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--hostile", action="store_true", help="only the hostile-load figures (bench/hostile.py)")
    args = parser.parse_args(argv)
    if args.hostile:
        return run_hostile(args.json)
    figures: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": _cpu(),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "quick": args.quick,
        "resolve": resolve.run(20_000 if args.quick else 100_000),
        "webhook": webhook.run(quick=args.quick),
        "reports": reports.run(50_000),
        "operator": operator.run(5_000 if args.quick else 50_000),
    }
    figures["targets"] = checks(figures)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "summary.md").write_text(markdown(figures), encoding="utf-8")
    (out / "last.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    if args.json:
        json.dump(figures, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(markdown(figures))
    return 0


def run_hostile(as_json: bool) -> int:
    figures = {"date": dt.date.today().isoformat(), "machine": _cpu(), "cpus": os.cpu_count(), **hostile.run()}
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    text = f"Measured {figures['date']} on {figures['machine']} ({figures['cpus']} CPUs).\n\n" + hostile.markdown(
        figures
    )
    (out / "hostile.md").write_text(text, encoding="utf-8")
    (out / "hostile.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    if as_json:
        json.dump(figures, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text)
    return 0 if all(figures["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
