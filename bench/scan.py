"""Judge 50,000 pod objects held in memory and build their namespaces' PolicyReports.

Runs in a child process so that its peak memory (``ru_maxrss``) is its own: the figure
includes the interpreter, the catalog and the 50,000 pod objects themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
from typing import Any

from bench.corpus import mixed_corpus
from controller.operator.core import Core
from policy.catalog import default_catalog
from policy.evaluate import Engine
from policy.policy import load_policy


def pods(n: int, namespaces: int = 250, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    images = mixed_corpus(default_catalog(), n * 2, seed=seed)
    out = []
    for i in range(n):
        containers = [
            {"name": f"c{j}", "image": images[(i * 2 + j) % len(images)]} for j in range(rng.choice((1, 1, 2, 3)))
        ]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"pod-{i}",
                    "namespace": f"team-{i % namespaces}",
                    "uid": f"00000000-0000-0000-0000-{i:012d}",
                    "labels": {"app": f"app-{i % 997}"},
                },
                "spec": {"containers": containers},
            }
        )
    return out


def child(n: int) -> dict[str, Any]:
    objs = pods(n)
    engine = Engine(default_catalog(), dt.date(2026, 11, 23))
    core = Core(engine, load_policy({}), clock=lambda: 1_795_000_000.0)
    t0 = time.perf_counter()
    for obj in objs:
        core.observe(obj)
    judged = time.perf_counter() - t0
    results = written = 0
    for ns in core.book.namespaces():  # as the operator writes them: one namespace at a time
        doc = core.book.document(ns)
        results += len(doc["results"])
        written += len(json.dumps(doc))
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    core.reevaluate(Engine(default_catalog(), dt.date(2027, 2, 1)))
    re = time.perf_counter() - t1
    return {
        "pods": n,
        "namespaces": len(core.book.namespaces()),
        "results": results,
        "report_mb": round(written / 1e6, 1),
        "judge_s": round(judged, 3),
        "seconds": round(built, 3),
        "reevaluate_s": round(re, 3),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(n: int = 50_000) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.scan", str(n)], check=True, capture_output=True, text=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)))
