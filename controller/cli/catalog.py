"""``dlc-guard catalog show|info|import|diff``: what the catalog says, where it came from."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any, TextIO

from controller.cli.common import EXIT_FAIL, EXIT_OK, Subparsers, UsageError, load_catalog_option
from policy.catalog import Catalog, CatalogError, load_catalog
from policy.catalog.diff import diff_catalogs


def add_parser(sub: Subparsers[argparse.ArgumentParser]) -> None:
    cat = sub.add_parser("catalog", help="inspect, build and compare catalogs")
    csub = cat.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND", required=True)

    info = csub.add_parser("info", help="the catalog's source, age and size")
    info.add_argument("--catalog", metavar="FILE", help="catalog file (default: the embedded catalog)")
    info.add_argument("--as-of", default=None, metavar="YYYY-MM-DD", help="date to measure the age against")
    info.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format (default text)")
    info.set_defaults(func=cmd_info)

    show = csub.add_parser("show", help="lines, dates and images of a repository or framework")
    show.add_argument("query", metavar="REPOSITORY|FRAMEWORK", help="e.g. pytorch-training, PyTorch, 'PyTorch 2.6'")
    show.add_argument("--catalog", metavar="FILE", help="catalog file (default: the embedded catalog)")
    show.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format (default text)")
    show.set_defaults(func=cmd_show)

    imp = csub.add_parser("import", help="build a catalog from an upstream data directory")
    imp.add_argument("upstream", metavar="DIR", help="directory in the upstream layout (data/*.yml, …)")
    imp.add_argument("--overlay", metavar="FILE", help="overlay (default: the packaged overlay)")
    imp.add_argument("--out", "-O", metavar="FILE", help="write here (default: stdout)")
    imp.set_defaults(func=cmd_import)

    diff = csub.add_parser("diff", help="what changed between two catalogs")
    diff.add_argument("old", metavar="OLD", help="catalog file ('embedded' for the packaged one)")
    diff.add_argument("new", metavar="NEW", help="catalog file ('embedded' for the packaged one)")
    diff.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format (default text)")
    diff.set_defaults(func=cmd_diff)


def _load(path: str | None) -> Catalog:

    return load_catalog_option(None if path in (None, "embedded") else path)


def _date(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def cmd_info(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    cat = _load(args.catalog)
    try:
        today = dt.date.fromisoformat(args.as_of) if args.as_of else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise UsageError(f"--as-of {args.as_of!r} is not a date (YYYY-MM-DD)") from None
    info = {
        "origin": args.catalog or "embedded",
        "source": cat.source,
        "age_days": cat.age_days(today),
        "frameworks": len(cat.frameworks),
        "families": len(cat.families),
        "repositories": len(cat.repositories()),
        "images": sum(len(f.images) for f in cat.families.values()),
        "tags": sum(len(i.tags) for f in cat.families.values() for i in f.images),
        "regions": len(cat.dlc_accounts),
        "advisories": len(cat.advisories),
    }
    if args.output == "json":
        json.dump(info, stdout, indent=2, default=str)
        stdout.write("\n")
        return EXIT_OK
    src = cat.source
    stdout.write(f"catalog:      {info['origin']}\n")
    stdout.write(f"source:       {src.get('kind', '?')} {src.get('location', '')}\n")
    if src.get("commit"):
        stdout.write(f"commit:       {src['commit']}\n")
    stdout.write(f"data date:    {src.get('date', '?')} (age {info['age_days']} days)\n")
    for key in ("frameworks", "families", "repositories", "images", "tags", "regions", "advisories"):
        stdout.write(f"{key + ':':<13} {info[key]}\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    cat = _load(args.catalog)
    words = args.query.split()
    name, want_line = words[0], (words[1] if len(words) > 1 else None)
    families = cat.by_repository.get(name) or [
        f for f in cat.families.values() if f.framework.lower() == name.lower() or f.name == name
    ]
    framework = next((fw for fw in cat.frameworks.values() if fw.name.lower() == name.lower()), None)
    if not families and framework is None:
        stderr.write(f"dlc-guard: nothing in the catalog is called {name!r} (a repository, family or framework)\n")
        return EXIT_FAIL
    doc: dict[str, Any] = {"query": args.query, "framework": None, "families": []}
    if framework is not None:
        doc["framework"] = {
            "name": framework.name,
            "latest_only": framework.latest_only,
            "lines": {
                k: {"ga": _date(v.ga), "eop": _date(v.eop)}
                for k, v in framework.lines.items()
                if want_line is None or k == want_line
            },
        }
    for fam in families:
        images = [i for i in fam.images if want_line is None or i.line == want_line]
        if want_line is not None and not images and want_line not in fam.lines:
            continue
        doc["families"].append(
            {
                "name": fam.name,
                "repository": fam.repository,
                "framework": fam.framework,
                "registry": fam.registry,
                "lines": {
                    k: {"ga": _date(v.ga), "eop": _date(v.eop)}
                    for k, v in fam.lines.items()
                    if want_line is None or k == want_line
                },
                "images": [{"version": str(i.version), "tags": list(i.tags)} for i in images],
            }
        )
    if args.output == "json":
        json.dump(doc, stdout, indent=2)
        stdout.write("\n")
        return EXIT_OK
    if doc["framework"]:
        fw = doc["framework"]
        stdout.write(f"{fw['name']}" + (" (only the latest release is supported)" if fw["latest_only"] else "") + "\n")
        for k, v in fw["lines"].items():
            stdout.write(f"  {k:<8} GA {v['ga'] or '-':<10}  EOP {v['eop'] or '-'}\n")
    for fam in doc["families"]:
        stdout.write(f"\n{fam['repository']}  [{fam['name']}, {fam['framework']}]\n")
        for k, v in fam["lines"].items():
            stdout.write(f"  {k:<8} GA {v['ga'] or '-':<10}  EOP {v['eop'] or '-'}\n")
        for img in fam["images"]:
            stdout.write(f"  {img['version']:<10} {', '.join(img['tags'])}\n")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from controller.upstream import import_upstream
    from policy.catalog.importer import ImportError_, load_overlay

    upstream = Path(args.upstream)
    if not upstream.is_dir():
        raise UsageError(f"{upstream}: not a directory")
    try:
        result = import_upstream(upstream, load_overlay(Path(args.overlay)) if args.overlay else None)
    except ImportError_ as exc:
        raise CatalogError([str(exc)], str(upstream)) from exc
    load_catalog(result.document, str(upstream))  # never write a catalog that would not load
    text = json.dumps(result.document, indent=1) + "\n"
    for w in result.warnings:
        stderr.write(f"warning: {w}\n")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        stderr.write(f"wrote {args.out}: {len(result.document['families'])} families\n")
    else:
        stdout.write(text)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    changes = diff_catalogs(_load(args.old), _load(args.new))
    if args.output == "json":
        json.dump([c.to_dict() for c in changes], stdout, indent=2)
        stdout.write("\n")
    else:
        for c in changes:
            stdout.write(f"{c}\n")
        stdout.write(f"{len(changes)} changes\n")
    return EXIT_OK
