"""``DLCGuardException``: exemptions granted by someone other than the workload's owner.

The policy's own ``exemptions`` match objects by labels and names, which whoever writes the
workload also writes: they are self-service. An exception is a namespaced resource of its own,
so who may grant one is decided by RBAC (the chart's ``exception-approver`` ClusterRole, bound
to nobody by default), the way Kyverno's PolicyException is::

    apiVersion: dlcguard.io/v1alpha1
    kind: DLCGuardException
    metadata: {name: legacy-trainer, namespace: ml}
    spec:
      reason: migration to PyTorch 2.10 tracked in ML-123     # required
      expires: "2027-01-31"                                  # required: the last day it applies
      images: ["*/pytorch-training:2.6.*"]                   # required: globs of the references
      containers: [trainer]                                  # optional: container names (globs)
      match:                                                 # optional: which objects
        names: ["trainer", "trainer-*"]                      #   object names (globs)
        selector: {matchLabels: {app: trainer}}              #   object labels
      namespaces: [ml]                                       # optional: default its own namespace

An exception applies in its own namespace. Only an exception that lives in one of the policy's
``exceptionNamespaces`` (the security team's, by default the controller's own) may reach other
namespaces: granting ``create`` in one namespace never exempts another. Pure: parsing and
matching only.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy.selectors import LabelSelector, parse_selector

__all__ = ["EXCEPTION_KIND", "ExceptionBook", "ExceptionError", "GuardException", "load_exception", "load_exceptions"]

EXCEPTION_KIND = "DLCGuardException"
EXCEPTION_API = "dlcguard.io/v1alpha1"
REASON_MAX = 500


class ExceptionError(ValueError):
    def __init__(self, problems: list[str], origin: str) -> None:
        self.problems = problems
        super().__init__(f"{origin} is not a valid {EXCEPTION_KIND}:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class GuardException:
    namespace: str
    name: str
    reason: str
    expires: dt.date
    images: tuple[str, ...]
    containers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    namespaces: tuple[str, ...] = ()
    """Globs of the namespaces it covers; empty: its own."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def label(self) -> str:
        """How a finding names it: ``DLCGuardException ml/legacy-trainer: <reason>``."""
        return f"{EXCEPTION_KIND} {self.ref}: {self.reason}"

    def active(self, today: dt.date) -> bool:
        return today <= self.expires

    def reaches(self, namespace: str, trusted: Iterable[str]) -> bool:
        """Whether it may apply in ``namespace``: its own, or any it names when it lives in a
        trusted exception namespace."""
        if not self.namespaces:
            return namespace == self.namespace
        if not any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces):
            return False
        return namespace == self.namespace or self.namespace in set(trusted)

    def covers_object(self, namespace: str, name: str, labels: Mapping[str, str], trusted: Iterable[str]) -> bool:
        if not self.reaches(namespace, trusted):
            return False
        if self.names and not any(fnmatch.fnmatchcase(name, p) for p in self.names):
            return False
        return self.selector is None or self.selector.matches(labels)

    def covers(self, container: str, image: str) -> bool:
        if self.containers and not any(fnmatch.fnmatchcase(container, p) for p in self.containers):
            return False
        return any(fnmatch.fnmatchcase(image, p) for p in self.images)


def _globs(raw: Any, path: str, problems: list[str], required: bool = False) -> tuple[str, ...]:
    if raw is None:
        if required:
            problems.append(f"{path}: required (a list of globs)")
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        problems.append(f"{path}: expected a list of non-empty strings")
        return ()
    if required and not raw:
        problems.append(f"{path}: must name at least one glob")
    return tuple(raw)


def load_exception(doc: Any, origin: str | None = None) -> GuardException:
    """Validate one ``DLCGuardException`` resource; every problem is named with its field."""
    if not isinstance(doc, Mapping):
        raise ExceptionError(["(document): expected a mapping"], origin or EXCEPTION_KIND)
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    origin = origin or f"{EXCEPTION_KIND} {namespace}/{name}"
    problems: list[str] = []
    _check_header(doc, namespace, name, problems)
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise ExceptionError([*problems, "spec: expected a mapping"], origin)
    for key in spec:
        if key not in ("reason", "expires", "images", "containers", "match", "namespaces"):
            problems.append(f"spec.{key}: unknown field")
    reason = _reason(spec.get("reason"), problems)
    expires = _expires(spec.get("expires"), problems)
    images = _globs(spec.get("images"), "spec.images", problems, required=True)
    containers = _globs(spec.get("containers"), "spec.containers", problems)
    namespaces = _globs(spec.get("namespaces"), "spec.namespaces", problems)
    names, selector = _match(spec.get("match") or {}, problems)
    if problems or expires is None:
        raise ExceptionError(problems, origin)
    return GuardException(namespace, name, reason.strip(), expires, images, containers, names, selector, namespaces)


def _check_header(doc: Mapping[str, Any], namespace: str, name: str, problems: list[str]) -> None:
    if doc.get("apiVersion", EXCEPTION_API) != EXCEPTION_API:
        problems.append(f"apiVersion: expected {EXCEPTION_API!r}, got {doc.get('apiVersion')!r}")
    if doc.get("kind", EXCEPTION_KIND) != EXCEPTION_KIND:
        problems.append(f"kind: expected {EXCEPTION_KIND!r}, got {doc.get('kind')!r}")
    if not namespace:
        problems.append("metadata.namespace: required (exceptions are namespaced)")
    if not name:
        problems.append("metadata.name: required")


def _reason(reason: Any, problems: list[str]) -> str:
    if not isinstance(reason, str) or not reason.strip():
        problems.append("spec.reason: required (say why, e.g. the ticket that tracks the migration)")
        return ""
    if len(reason) > REASON_MAX:
        problems.append(f"spec.reason: at most {REASON_MAX} characters")
    return reason


def _expires(raw: Any, problems: list[str]) -> dt.date | None:
    if raw is None:
        problems.append("spec.expires: required (YYYY-MM-DD, the last day the exception applies)")
        return None
    try:
        return raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
    except ValueError:
        problems.append(f"spec.expires: {raw!r} is not a date (YYYY-MM-DD)")
        return None


def _match(match: Any, problems: list[str]) -> tuple[tuple[str, ...], LabelSelector | None]:
    if not isinstance(match, Mapping):
        problems.append("spec.match: expected a mapping {names, selector}")
        return (), None
    for key in match:
        if key not in ("names", "selector"):
            problems.append(f"spec.match.{key}: unknown field")
    names = _globs(match.get("names"), "spec.match.names", problems)
    selector = None
    if match.get("selector") is not None:
        selector = parse_selector(match["selector"], "spec.match.selector", problems)
    return names, selector


def load_exceptions(docs: Iterable[Any]) -> tuple[tuple[GuardException, ...], list[str]]:
    """The valid exceptions among ``docs`` and one line per rejected one (never all or nothing:
    a broken exception must not take the others down with it)."""
    good: list[GuardException] = []
    bad: list[str] = []
    for doc in docs:
        try:
            good.append(load_exception(doc))
        except ExceptionError as exc:
            bad.append(str(exc).replace("\n  ", " "))
    good.sort(key=lambda e: (e.namespace, e.name))
    return tuple(good), bad


class ExceptionBook:
    """The cluster's exception resources by namespace and name, as a list + watch delivers them,
    and the valid ones among them (:attr:`exceptions`). Shared by the webhook and the operator."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._rejected: set[str] = set()
        self.exceptions: tuple[GuardException, ...] = ()

    @staticmethod
    def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        return str(meta.get("namespace") or ""), str(meta.get("name") or "")

    def replace(self, docs: Iterable[Mapping[str, Any]]) -> list[str]:
        """A fresh listing; returns the rejections not reported before."""
        self._docs = {self._key(d): d for d in docs}
        return self._reload()

    def apply(self, event_type: str, doc: Mapping[str, Any]) -> list[str]:
        """One watch event; returns the rejections not reported before."""
        if event_type == "DELETED":
            self._docs.pop(self._key(doc), None)
        else:
            self._docs[self._key(doc)] = doc
        return self._reload()

    def _reload(self) -> list[str]:
        self.exceptions, bad = load_exceptions(self._docs.values())
        new = [why for why in bad if why not in self._rejected]
        self._rejected = set(bad)
        return new
