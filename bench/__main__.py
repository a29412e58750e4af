"""``python -m bench [--quick] [--json]``: run the benchmarks and print the figures."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from bench import resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller corpus, for a short run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else 100_000
    figures = {
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "resolve": resolve.run(n),
    }
    if args.json:
        json.dump(figures, sys.stdout)
        sys.stdout.write("\n")
    else:
        r = figures["resolve"]
        print(
            f"resolve: {r['references']} refs ({r['distinct']} distinct): "
            f"uncached {r['uncached_refs_per_s']:,}/s, cold {r['cold_refs_per_s']:,}/s, warm {r['warm_refs_per_s']:,}/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
