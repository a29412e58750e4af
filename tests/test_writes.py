"""The operator's paced writers without a cluster: merging, retries, what is dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from controller.kube.client import ClusterError
from controller.operator.reports import parse_summary, wanted
from controller.operator.writes import WriteQueue


def test_report_apis_follow_the_setting_and_what_is_served() -> None:
    both = {"wgpolicyk8s", "openreports"}
    assert [f.name for f in wanted("auto", both)] == ["openreports", "wgpolicyk8s"]
    assert [f.name for f in wanted("auto", {"wgpolicyk8s"})] == ["wgpolicyk8s"]
    assert wanted("auto", set()) == []
    assert [f.name for f in wanted("openreports", both)] == ["openreports"]
    assert wanted("openreports", {"wgpolicyk8s"}) == [], "asked for and not served: nothing, said in the status"
    assert [f.name for f in wanted("both", {"openreports"})] == ["openreports"]


def test_summary_annotations_read_back_or_read_as_nothing() -> None:
    assert parse_summary("1,2,0,0,3") == {"pass": 1, "fail": 2, "warn": 0, "error": 0, "skip": 3}
    assert parse_summary("") == {} and parse_summary("1,2") == {} and parse_summary("a,b,c,d,e") == {}


class Sink:
    def __init__(self, fail: dict[str, list[int]] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail or {}

    def send(self, path: str, patch: dict[str, Any]) -> None:
        statuses = self.fail.get(path) or []
        if statuses:
            raise ClusterError(f"PATCH {path}: {statuses[0]}", statuses.pop(0))
        self.sent.append((path, dict(patch)))


async def drain(q: WriteQueue, until: Any) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(q.run(stop, lambda: True))
    for _ in range(200):
        if until():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task


@pytest.mark.asyncio
async def test_patches_for_one_object_merge_into_one_write() -> None:
    counts: list[tuple[str, str]] = []
    q = WriteQueue(AsyncLimiter(100, 1), 2, lambda what, result: counts.append((what, result)))
    sink = Sink()
    q.annotate("/a", {"v": "expiring", "n": "2027-01-22"}, lambda p: sink.send("/a", p))
    q.annotate("/a", {"v": "unsupported", "n": None}, lambda p: sink.send("/a", p))
    q.annotate("/b", {"v": "supported"}, lambda p: sink.send("/b", p))
    assert len(q) == 2
    await drain(q, lambda: len(sink.sent) == 2)
    assert sink.sent == [("/a", {"v": "unsupported", "n": None}), ("/b", {"v": "supported"})]
    assert counts == [("annotations", "ok")] * 2


@pytest.mark.asyncio
async def test_passing_failures_are_retried_and_refusals_dropped() -> None:
    counts: list[tuple[str, str]] = []
    q = WriteQueue(AsyncLimiter(100, 1), 2, lambda what, result: counts.append((what, result)))
    sink = Sink({"/busy": [429], "/gone": [404]})
    q.annotate("/busy", {"v": "x"}, lambda p: sink.send("/busy", p))
    q.annotate("/gone", {"v": "x"}, lambda p: sink.send("/gone", p))
    await drain(q, lambda: any(path == "/busy" for path, _ in sink.sent))
    assert [path for path, _ in sink.sent] == ["/busy"], "429 retried, 404 dropped"
    assert len(q) == 0 and counts.count(("annotations", "error")) == 2
