"""resolve+evaluate throughput over a mixed corpus, cold and warm cache."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench.corpus import mixed_corpus
from policy.catalog import default_catalog
from policy.evaluate import Engine


def run(n: int = 100_000) -> dict[str, Any]:
    catalog = default_catalog()
    corpus = mixed_corpus(catalog, n)
    distinct = len(set(corpus))
    # uncached: every reference judged from scratch (caches of one entry)
    engine = Engine(catalog, dt.date(2026, 11, 23), cache_size=1)
    t0 = time.perf_counter()
    for ref in corpus:
        engine.evaluate(ref)
    uncached = time.perf_counter() - t0
    # cold: the first pass of a fresh engine (every cache empty at the start)
    engine = Engine(catalog, dt.date(2026, 11, 23))
    t0 = time.perf_counter()
    for ref in corpus:
        engine.evaluate(ref)
    cold = time.perf_counter() - t0
    # warm: the default bounded cache, second pass over the same corpus
    engine = Engine(catalog, dt.date(2026, 11, 23))
    engine.evaluate_many(corpus)
    t0 = time.perf_counter()
    for ref in corpus:
        engine.evaluate(ref)
    warm = time.perf_counter() - t0
    return {
        "references": n,
        "distinct": distinct,
        "uncached_refs_per_s": round(n / uncached),
        "cold_refs_per_s": round(n / cold),
        "warm_refs_per_s": round(n / warm),
        "cold_s": round(cold, 3),
        "warm_s": round(warm, 4),
    }
