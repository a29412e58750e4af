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

from bench import hostile, resolve, scan, webhook

TARGETS = {
    "ratio": (">=", 0.8),
    "p99_ms": ("<=", 5.0),
    "warm_refs_per_s": (">=", 200_000),
    "scan_seconds": ("<=", 10.0),
    "scan_peak_mb": ("<=", 300.0),
}


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
        "scan_seconds": figures["scan"]["seconds"],
        "scan_peak_mb": figures["scan"]["peak_mb"],
    }
    out = {}
    for key, (op, target) in TARGETS.items():
        v = values[key]
        out[key] = {"value": v, "target": f"{op} {target}", "met": v >= target if op == ">=" else v <= target}
    return out


def markdown(f: dict[str, Any]) -> str:
    r, w, s = f["resolve"], f["webhook"], f["scan"]
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
        f"| {s['pods']:,} pods judged into {s['namespaces']} PolicyReports | {s['seconds']} s | ≤ 10 s |",
        f"| peak memory of that run | {s['peak_mb']} MB | ≤ 300 MB |",
        f"| re-evaluation of all of them on a later date | {s['reevaluate_s']} s | |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a short run (under two minutes)")
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
        "scan": scan.run(50_000),
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
