"""The report book: what is held, what is left to write, and in which order (no cluster)."""

from __future__ import annotations

from policy.report import Entry, ReportBook, WorkloadRef, fingerprint

FAIL = Entry("EOP_PASSED", "fail", "high", "container 'c' image x is unsupported", (("image", "x"),), 100)
PASS = Entry("SUPPORTED", "pass", "info", "container 'c' image y is supported", (("image", "y"),), 100)


def ref(name: str, ns: str = "ml") -> WorkloadRef:
    return WorkloadRef("apps/v1", "Deployment", ns, name, f"uid-{name}")


def drain(book: ReportBook) -> list[str]:
    items = book.take(10**6)
    for item in items:
        book.written(item)
    return [i.ref.name for i in items]


def test_timestamps_do_not_make_a_change() -> None:
    later = Entry(FAIL.rule, FAIL.result, FAIL.severity, FAIL.message, FAIL.properties, 999)
    assert fingerprint(ref("a"), [FAIL]) == fingerprint(ref("a"), [later])
    assert fingerprint(ref("a"), [FAIL]) != fingerprint(ref("b"), [FAIL])
    assert fingerprint(ref("a"), [FAIL]) != fingerprint(ref("a"), [PASS])
    book = ReportBook()
    assert book.put(ref("a"), [FAIL]) and drain(book) == ["a"]
    assert not book.put(ref("a"), [later]) and book.backlog == 0


def test_a_restart_that_finds_the_same_reports_writes_nothing() -> None:
    before = ReportBook()
    for name in ("a", "b", "c"):
        before.put(ref(name), [FAIL])
    drain(before)
    # the new process judges some workloads before its list of the reports comes back
    after = ReportBook()
    assert after.put(ref("a"), [FAIL])
    for name in ("a", "b", "c"):
        held = before.held("ml", f"uid-{name}")
        assert held is not None
        after.seed("ml", f"uid-{name}", held, {"fail": 1})
    assert after.backlog == 0, "judged before the list, and the same: dropped"
    assert not after.put(ref("b"), [FAIL]) and not after.put(ref("c"), [FAIL])
    assert after.summary("ml")["fail"] == 3 and after.reports("ml") == 3
    # one changed while the operator was down: only it is written
    assert after.put(ref("c"), [PASS]) and drain(after) == ["c"]
    # an unreadable fingerprint is rewritten
    after.seed("ml", "uid-d", "")
    assert after.put(ref("d"), [FAIL]) and drain(after) == ["d"]


def test_writes_leave_oldest_first_and_a_newer_state_replaces_an_older_one() -> None:
    book = ReportBook()
    for name in ("a", "b", "c"):
        book.put(ref(name), [FAIL])
    book.put(ref("a"), [PASS])  # changed again before it was written: one write, of the newest
    assert [i.ref.name for i in book.pending()] == ["b", "c", "a"]
    (b,) = book.take(1)
    book.failed(b)  # refused: tried again
    assert book.backlog == 3
    (c,) = book.take(1)
    book.put(ref("c"), [PASS])  # a newer state came while the write was in flight
    book.failed(c)  # the old one does not come back over it
    (item,) = [i for i in book.pending() if i.ref.name == "c"]
    assert item.results == [PASS]


def test_removal_writes_only_what_the_api_holds() -> None:
    book = ReportBook()
    assert not book.remove(ref("never"))
    book.put(ref("a"), [FAIL])
    assert not book.put(ref("a"), [])  # never written: nothing to delete
    assert book.backlog == 0
    book.put(ref("a"), [FAIL])
    drain(book)
    assert book.put(ref("a"), [])
    (item,) = book.take(1)
    assert item.delete
    book.written(item)
    assert book.reports("ml") == 0 and book.namespaces() == []


def test_the_namespace_summary_stays_five_numbers_however_many_reports() -> None:
    book = ReportBook()
    for i in range(3000):
        book.put(ref(f"w{i}"), [FAIL if i % 3 else PASS])
    drain(book)
    assert book.summary("ml") == {"pass": 1000, "fail": 2000, "warn": 0, "error": 0, "skip": 0}
    for i in range(0, 3000, 2):
        book.forget(ref(f"w{i}"))
    assert book.reports("ml") == 1500
    assert sum(book.summary("ml").values()) == 1500


def test_a_change_seen_again_while_its_write_is_in_flight_is_written_once() -> None:
    book = ReportBook()
    book.put(ref("a"), [FAIL])
    (item,) = book.take(1)
    assert not book.put(ref("a"), [FAIL]), "the same state is already on its way"
    book.written(item)
    assert book.backlog == 0
    # but a newer state while in flight is written after it
    book.put(ref("a"), [PASS])
    (item,) = book.take(1)
    assert book.put(ref("a"), [FAIL])
    book.written(item)
    assert [i.results for i in book.pending()] == [[FAIL]]
    # a failed flight comes back
    (item,) = book.take(1)
    book.failed(item)
    assert book.put(ref("a"), [FAIL]), "still to write"
    assert book.backlog == 1
