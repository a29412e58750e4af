"""The real operator's memory with N DLC workloads, on a real control plane.

Creates ``n`` Deployments (a realistic image mix, one namespace per 200), starts
``dlc-guard operator`` as the chart would (writes paced fast enough to finish within the run),
waits until it tracks them all and has nothing left to write, and reads its RSS from ``/proc``:
kopf, the API client, the core and the book, everything the process holds. Also counts what the
API server received for reports while it did so.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import mixed_corpus
from policy.catalog import default_catalog
from tests.cluster import control_plane, deployment, garbage_collector, install_crds
from tests.operatorproc import Cluster, rss_mib, wait_for


def run(n: int = 50_000) -> dict[str, Any]:
    images = mixed_corpus(default_catalog(), n, seed=5)
    with (
        tempfile.TemporaryDirectory(prefix="dlc-guard-bench-") as tmp,
        control_plane(Path(tmp) / "cp") as cp,
        garbage_collector(cp),
    ):
        install_crds(cp)
        spaces = [f"team-{i}" for i in range(max(1, n // 200))]
        for ns in spaces:
            cp.kubectl("create", "namespace", ns)
        c = Cluster(cp)
        t = time.monotonic()
        c.create([deployment(f"app-{i}", spaces[i % len(spaces)], images[i]) for i in range(n)])
        created = time.monotonic() - t
        idle_rss = 0.0
        try:
            proc = c.start_operator("--report-writes-per-second", "1000", "--report-burst", "200")
            wait_for("the operator to start", lambda: c.operator_metric("dlcguard_operator_workloads") >= 0, 60)
            idle_rss = rss_mib(proc.pid)
            t = time.monotonic()
            wait_for("every workload judged and reported", lambda: c.settled(n), 3600, c.log)
            settled = time.monotonic() - t
            rss = rss_mib(proc.pid)
            reports = c.api_writes("policyreports")
            failed = c.api_writes("policyreports", failed=True)
        finally:
            c.stop_operator()
    return {
        "workloads": n,
        "create_s": round(created, 1),
        "settle_s": round(settled, 1),
        "report_writes": reports,
        "failed_writes": failed,
        "rss_mb_start": round(idle_rss, 1),
        "rss_mb": round(rss, 1),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)))
