"""Regenerate the embedded catalog from the upstream data: ``make catalog``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from policy.catalog import load_catalog
from policy.catalog.importer import import_upstream


def main() -> int:
    upstream = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/dlc-data/upstream")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "policy/data/catalog.json")
    result = import_upstream(upstream)
    result.document["source"]["generated"] = result.document["source"]["date"]
    load_catalog(result.document, str(upstream))  # refuse to write an invalid catalog
    out.write_text(json.dumps(result.document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {out}: {len(result.document['families'])} families", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
