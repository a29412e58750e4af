"""Report writing for a 50,000-workload cluster: how many writes, how many bytes to the API.

The operator's own core and report book, with the writer's part done in process (each write is
the JSON body the operator would send by server-side apply, counted and measured, then marked
written), through the events of a cluster's life:

1. first sight of every workload (every report written once);
2. a daily re-evaluation on the next day, nothing changed in the catalog;
3. a restart: a new core whose book is told the fingerprints the API holds (as the operator's
   list of reports tells it), then every workload seen again;
4. a catalog change that moves one release line's end of patch into the past, used by 10% of
   the workloads: only their reports may be written.

Runs in a child process so that its peak memory (``ru_maxrss``) is its own: it includes the
interpreter, the catalog, the 50,000 workload objects and everything the core keeps of them.
The real operator adds kopf and the API client on top (README: "Reports at scale").
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
from importlib import resources
from typing import Any

from bench.corpus import mixed_corpus
from controller.operator.core import Core
from policy.catalog import Catalog, default_catalog, load_catalog
from policy.evaluate import Engine
from policy.policy import load_policy
from policy.report import WGPOLICY, ReportBook, results_for

TODAY = dt.date(2026, 11, 23)
FLIP = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10-gpu-py313-ec2"
"""The image of the 10% whose line the catalog change ends early (PyTorch 2.10)."""


def workloads(n: int, catalog: Catalog, namespaces: int = 250, seed: int = 11) -> tuple[list[dict[str, Any]], int]:
    """``n`` Deployments over ``namespaces`` namespaces; every tenth runs :data:`FLIP`, the rest
    a realistic mix without any PyTorch 2.10 image. Returns them and how many run FLIP."""
    rng = random.Random(seed)
    engine = Engine(catalog, TODAY)
    others = [im for im in mixed_corpus(catalog, n * 2, seed=seed) if not _is_flip_line(engine, im)]
    out = []
    flipped = 0
    for i in range(n):
        if i % 10 == 0:
            images = [FLIP]
            flipped += 1
        else:
            images = [others[(i * 3 + j) % len(others)] for j in range(rng.choice((1, 1, 2, 3)))]
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": f"app-{i}",
                    "namespace": f"team-{i % namespaces}",
                    "uid": f"00000000-0000-0000-0000-{i:012d}",
                    "labels": {"app": f"app-{i % 997}"},
                },
                "spec": {"template": {"spec": {"containers": containers(images)}}},
            }
        )
    return out, flipped


def containers(images: list[str]) -> list[dict[str, str]]:
    return [{"name": f"c{j}", "image": im} for j, im in enumerate(images)]


def _is_flip_line(engine: Engine, image: str) -> bool:
    r = engine.evaluate(image)
    return r.framework == "PyTorch" and (r.version or "").startswith("2.10")


def ended_early(catalog_doc: dict[str, Any]) -> dict[str, Any]:
    """The catalog with PyTorch 2.10's end of patch moved to before TODAY."""
    doc = copy.deepcopy(catalog_doc)
    doc["frameworks"]["PyTorch"]["lines"]["2.10"]["eop"] = "2026-11-01"
    for family in doc["families"].values():
        if family["framework"] == "PyTorch" and "2.10" in family["lines"]:
            family["lines"]["2.10"]["eop"] = "2026-11-01"
    return doc


def reports_changed(core: Core, engine: Engine) -> int:
    """Workloads whose results read differently under ``engine`` (judged apart from the book:
    what the writes should number). Their verdicts, and the recommendations of others that
    pointed at the line that ended."""
    before, after = core.engine, engine
    n = 0
    for t in core.tracked.values():
        core.engine = before
        old = core.judgement(t)
        core.engine = after
        new = core.judgement(t)
        if old is not None and new is not None and _content(old) != _content(new):
            n += 1
    core.engine = before
    return n


def _content(j: Any) -> list[dict[str, Any]]:
    return [e.content() for e in results_for(j, 0)]


def drain(book: ReportBook) -> tuple[int, int]:
    """Write everything pending, as the operator's writer would; (writes, bytes sent)."""
    items = book.take(10**9)
    sent = 0
    for item in items:
        if not item.delete:
            sent += len(json.dumps(item.document(WGPOLICY), separators=(",", ":")))
        book.written(item)
    return len(items), sent


def child(n: int) -> dict[str, Any]:
    catalog_doc = json.loads(resources.files("policy").joinpath("data/catalog.json").read_text(encoding="utf-8"))
    catalog = default_catalog()
    objs, flipped = workloads(n, catalog)
    policy = load_policy({})
    core = Core(Engine(catalog, TODAY), policy, clock=lambda: 1_795_000_000.0)
    phases: dict[str, dict[str, Any]] = {}

    def phase(name: str, started: float) -> None:
        writes, sent = drain(core.book)
        took = round(time.perf_counter() - started, 2)
        phases[name] = {"writes": writes, "mb": round(sent / 1e6, 2), "seconds": took}

    t = time.perf_counter()
    for obj in objs:
        core.observe(obj)
    phase("first sight", t)
    reports = len(core.book)

    t = time.perf_counter()
    core.reevaluate(Engine(catalog, TODAY + dt.timedelta(days=1)))
    phase("daily re-evaluation, nothing changed", t)

    t = time.perf_counter()
    held = core.book
    core = Core(Engine(catalog, TODAY + dt.timedelta(days=1)), policy, clock=lambda: 1_795_100_000.0)
    for namespace, name, fp in held.held_reports():  # what the operator's list of its reports reads back
        core.book.seed(namespace, name, fp)
    for obj in objs:
        core.observe(obj)
    phase("restart, nothing changed", t)

    later = Engine(load_catalog(ended_early(catalog_doc)), TODAY + dt.timedelta(days=1))
    changed = reports_changed(core, later)
    t = time.perf_counter()
    core.reevaluate(later)
    phase("catalog change ending one line early", t)
    return {
        "workloads": n,
        "reports": reports,
        "flipped": flipped,
        "changed_by_catalog": changed,
        "phases": phases,
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(n: int = 50_000) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.reports", str(n)], check=True, capture_output=True, text=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)))
