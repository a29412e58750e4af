"""The enforcement policy: modes, levels, exemptions, mirrors. Pure data + validation.

Document shape (the same one the CLI's ``--policy`` and the cluster resource carry)::

    apiVersion: dlcguard.io/v1alpha1
    kind: DLCGuardPolicy
    metadata: {name: default}
    spec:
      mode: enforce | warn | audit          # default warn
      denyLevel: unsupported                # enforce denies at or above this verdict
      warnLevel: outdated                   # warnings at or above this verdict
      warnDays: 60
      namespaces:                           # per-namespace overrides
        ml-sandbox: {mode: audit}
      exemptions:
        - namespaces: ["legacy-*"]          # globs
          objectSelector: {matchLabels: {dlc-guard.io/exempt: "true"}}
          namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [research]}]}
          images: ["*/pytorch-training:1.*"]
          expires: "2027-01-31"
          reason: migration ticket ML-123
      mirrors: ["registry.corp.example/dlc"]
      pullThroughCaches: ["ecr-public"]     # ECR pull-through cache prefixes (globs; default ["*"])
      exceptionNamespaces: [security]       # whose DLCGuardExceptions may reach other namespaces (and the controller's)
      customKinds: {PyTorchJob: ["spec.pytorchReplicaSpecs.*.template.spec"]}

Exemptions match what the workload's owner writes (labels, names, namespaces they create
into): they are *self-service*, and :attr:`Policy.self_service` says which ones are. Exemptions
that owners must not grant themselves are ``DLCGuardException`` resources
(:mod:`policy.exceptions`), carried in :attr:`Policy.exceptions`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from policy.exceptions import GuardException
from policy.registries import Mirror
from policy.selectors import LabelSelector, parse_selector
from policy.workloads import DEFAULT_CUSTOM_KINDS

__all__ = ["Exemption", "Policy", "PolicyError", "load_policy"]

MODES = ("enforce", "warn", "audit")
LEVELS = ("unsupported", "unknown", "outdated", "expiring")
API_VERSION = "dlcguard.io/v1alpha1"


class PolicyError(ValueError):
    def __init__(self, problems: list[str], origin: str = "policy") -> None:
        self.problems = problems
        super().__init__(f"{origin} is not a valid dlc-guard policy:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class Exemption:
    namespaces: tuple[str, ...] = ()
    object_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    images: tuple[str, ...] = ()
    expires: dt.date | None = None
    reason: str = ""

    def active(self, today: dt.date) -> bool:
        return self.expires is None or today <= self.expires

    def covers_object(
        self, namespace: str, labels: Mapping[str, str], namespace_labels: Mapping[str, str] | None = None
    ) -> bool:
        """Whether the object is covered. A namespace selector never matches when the namespace's
        labels are unknown (``None``): an exemption is not granted on a guess."""
        if self.namespaces and not any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces):
            return False
        if self.namespace_selector is not None and (
            namespace_labels is None or not self.namespace_selector.matches(namespace_labels)
        ):
            return False
        return self.object_selector is None or self.object_selector.matches(labels)

    def covers_image(self, image: str) -> bool:
        return not self.images or any(fnmatch.fnmatchcase(image, p) for p in self.images)


@dataclass(frozen=True, slots=True)
class Settings:
    mode: str = "warn"
    deny_level: str = "unsupported"
    warn_level: str = "outdated"


@dataclass(frozen=True, slots=True)
class Policy:
    defaults: Settings = Settings()
    namespaces: Mapping[str, Settings] = field(default_factory=dict)
    exemptions: tuple[Exemption, ...] = ()
    warn_days: int = 60
    mirrors: tuple[Mirror, ...] = ()
    custom_kinds: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CUSTOM_KINDS))
    exempt_namespaces: tuple[str, ...] = ("kube-system",)
    exception_namespaces: tuple[str, ...] = ()
    """Namespaces whose exceptions (``DLCGuardException``) may cover other namespaces (the controller's own
    by default); anywhere else an exception covers only its own namespace."""
    exceptions: tuple[GuardException, ...] = ()
    """The ``DLCGuardException`` resources in force (the cluster's; not part of the document)."""
    anaconda_notice: str = "reports"
    """``reports`` (check, scan, PolicyReports; the default), ``warnings`` (kubectl warnings too) or
    ``off``: the seed's Anaconda licence answer on images no longer actively maintained."""

    def with_exceptions(self, exceptions: tuple[GuardException, ...]) -> Policy:
        return replace(self, exceptions=exceptions)

    @property
    def self_service(self) -> list[str]:
        """Exemptions a workload owner can grant themselves, each with the field that lets them."""
        out = []
        for i, e in enumerate(self.exemptions):
            if e.object_selector is not None:
                out.append(f"exemptions[{i}] matches objectSelector {e.object_selector}: labels the owner sets")
        return out

    def settings_for(self, namespace: str) -> Settings:
        return self.namespaces.get(namespace, self.defaults)

    @property
    def needs_namespace_labels(self) -> bool:
        return any(e.namespace_selector is not None for e in self.exemptions)

    def exemptions_for(
        self,
        namespace: str,
        labels: Mapping[str, str],
        today: dt.date,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> list[Exemption]:
        return [e for e in self.exemptions if e.active(today) and e.covers_object(namespace, labels, namespace_labels)]

    def exceptions_for(
        self, namespace: str, name: str, labels: Mapping[str, str], today: dt.date
    ) -> list[GuardException]:
        return [
            e
            for e in self.exceptions
            if e.active(today) and e.covers_object(namespace, name, labels, self.exception_namespaces)
        ]


def _settings(raw: Any, path: str, base: Settings, problems: list[str]) -> Settings:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected a mapping")
        return base
    mode = raw.get("mode", base.mode)
    if mode not in MODES:
        problems.append(f"{path}.mode: {mode!r} is not one of {list(MODES)}")
        mode = base.mode
    deny = raw.get("denyLevel", base.deny_level)
    if deny not in LEVELS:
        problems.append(f"{path}.denyLevel: {deny!r} is not one of {list(LEVELS)}")
        deny = base.deny_level
    warn = raw.get("warnLevel", base.warn_level)
    if warn not in LEVELS:
        problems.append(f"{path}.warnLevel: {warn!r} is not one of {list(LEVELS)}")
        warn = base.warn_level
    return Settings(mode, deny, warn)


def _strings(raw: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        problems.append(f"{path}: expected a list of strings")
        return ()
    return tuple(raw)


ANACONDA_NOTICE_MODES = ("reports", "warnings", "off")


SPEC_FIELDS = frozenset(
    {
        "mode",
        "denyLevel",
        "warnLevel",
        "warnDays",
        "namespaces",
        "exemptions",
        "mirrors",
        "customKinds",
        "exemptNamespaces",
        "exceptionNamespaces",
        "pullThroughCaches",
        "catalog",
        "anacondaNotice",
    }
)
EXEMPTION_FIELDS = ("namespaces", "objectSelector", "namespaceSelector", "images", "expires", "reason")


def load_policy(document: Any, origin: str = "policy", controller_namespace: str | None = None) -> Policy:
    """Validate a policy document (the whole resource, or just its ``spec``)."""
    problems: list[str] = []
    spec, prefix = _spec_of(document, origin, problems)
    for key in spec:
        if key not in SPEC_FIELDS:
            problems.append(f"{prefix}.{key}: unknown field")
    defaults = _settings(spec, prefix, Settings(), problems)
    warn_days = spec.get("warnDays", 60)
    if not isinstance(warn_days, int) or isinstance(warn_days, bool) or warn_days < 0:
        problems.append(f"{prefix}.warnDays: expected a whole number >= 0, got {warn_days!r}")
        warn_days = 60
    namespaces = {
        str(ns): _settings(raw, f"{prefix}.namespaces.{ns}", defaults, problems)
        for ns, raw in _mapping(spec.get("namespaces"), f"{prefix}.namespaces", "namespace to settings", problems)
    }
    raw_ex = spec.get("exemptions") or []
    if not isinstance(raw_ex, list):
        problems.append(f"{prefix}.exemptions: expected a list")
        raw_ex = []
    exemptions = [
        ex for i, raw in enumerate(raw_ex) if (ex := _exemption(raw, f"{prefix}.exemptions[{i}]", problems)) is not None
    ]
    mirrors = tuple(Mirror(m) for m in _strings(spec.get("mirrors"), f"{prefix}.mirrors", problems))
    caches = spec.get("pullThroughCaches", ["*"])
    mirrors += tuple(Mirror(m, pull_through=True) for m in _strings(caches, f"{prefix}.pullThroughCaches", problems))
    exception_ns = list(_strings(spec.get("exceptionNamespaces"), f"{prefix}.exceptionNamespaces", problems))
    custom = dict(DEFAULT_CUSTOM_KINDS)
    for kind, paths in _mapping(spec.get("customKinds"), f"{prefix}.customKinds", "kind to paths", problems):
        custom[str(kind)] = _strings(paths, f"{prefix}.customKinds.{kind}", problems)
    exempt_ns = ["kube-system", *(_strings(spec.get("exemptNamespaces"), f"{prefix}.exemptNamespaces", problems))]
    if controller_namespace:  # the controller's own namespace is always trusted, and exempt
        exception_ns.append(controller_namespace)
        exempt_ns.append(controller_namespace)
    anaconda = spec.get("anacondaNotice", "reports")
    if anaconda not in ANACONDA_NOTICE_MODES:
        problems.append(f"{prefix}.anacondaNotice: expected one of {list(ANACONDA_NOTICE_MODES)}, got {anaconda!r}")
        anaconda = "reports"
    if problems:
        raise PolicyError(problems, origin)
    return Policy(
        defaults,
        namespaces,
        tuple(exemptions),
        warn_days,
        mirrors,
        custom,
        tuple(exempt_ns),
        tuple(exception_ns),
        anaconda_notice=str(anaconda),
    )


def _spec_of(document: Any, origin: str, problems: list[str]) -> tuple[Mapping[str, Any], str]:
    """The spec of a whole resource, or the document itself when it is only a spec."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise PolicyError(["(document): expected a mapping"], origin)
    spec: Any = document
    if "spec" in document or "apiVersion" in document:
        if document.get("apiVersion", API_VERSION) != API_VERSION:
            problems.append(f"apiVersion: expected {API_VERSION!r}, got {document.get('apiVersion')!r}")
        if document.get("kind", "DLCGuardPolicy") != "DLCGuardPolicy":
            problems.append(f"kind: expected 'DLCGuardPolicy', got {document.get('kind')!r}")
        spec = document.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise PolicyError(["spec: expected a mapping"], origin)
    return spec, "spec"


def _mapping(raw: Any, path: str, what: str, problems: list[str]) -> list[tuple[Any, Any]]:
    if not raw:
        return []
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected a mapping of {what}")
        return []
    return list(raw.items())


def _exemption(raw: Any, p: str, problems: list[str]) -> Exemption | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{p}: expected a mapping")
        return None
    for key in raw:
        if key not in EXEMPTION_FIELDS:
            problems.append(f"{p}.{key}: unknown field")
    obj_sel = raw.get("objectSelector")
    ns_sel = raw.get("namespaceSelector")
    expires = None
    if raw.get("expires") is not None:
        try:
            value = raw["expires"]
            expires = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except ValueError:
            problems.append(f"{p}.expires: {raw['expires']!r} is not a date (YYYY-MM-DD)")
    ex = Exemption(
        namespaces=_strings(raw.get("namespaces"), f"{p}.namespaces", problems),
        object_selector=None if obj_sel is None else parse_selector(obj_sel, f"{p}.objectSelector", problems),
        namespace_selector=None if ns_sel is None else parse_selector(ns_sel, f"{p}.namespaceSelector", problems),
        images=_strings(raw.get("images"), f"{p}.images", problems),
        expires=expires,
        reason=str(raw.get("reason", "")),
    )
    if not (ex.namespaces or ex.object_selector or ex.namespace_selector or ex.images):
        problems.append(f"{p}: an exemption must name namespaces, a selector or images")
    return ex
