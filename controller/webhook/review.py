"""AdmissionReview in, AdmissionReview out: the webhook's decision, without any server.

``serve_review(body, ...)`` takes the parsed JSON body and returns the response document;
it raises :class:`BadReview` (HTTP 400) for anything that is not a v1 AdmissionReview it can
answer. Everything it needs comes in as arguments, so tests call it directly too.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from controller import jsonio
from policy.evaluate import RANK, Engine, pending
from policy.exceptions import ExceptionError, load_exception
from policy.judge import Finding, OldImages, annotations_for, judge_object, labels_of, name_of, old_images_of
from policy.policy import Policy, PolicyError, load_policy
from policy.workloads import Container, containers_of, pod_spec_paths

WARNING_MAX = 256
WARNINGS_TOTAL_MAX = 4000
MESSAGE_MAX = 1024


class BadReview(ValueError):
    """A body the webhook cannot answer; becomes HTTP 400 with this message."""


@dataclass
class Decision:
    uid: str
    dry_run: bool = False
    allowed: bool = True
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    worst: str | None = None
    decision: str = "allow"
    """``allow``, ``warn``, ``deny`` or ``skip`` (for metrics)."""
    patch: list[dict[str, Any]] | None = None

    @property
    def pending_images(self) -> list[str]:
        """Images judged ``unknown`` only until a registry answers (digest-only references)."""
        return [f.result.image for f in self.findings if pending(f.result)]


def _req(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if body.get("kind") != "AdmissionReview":
        raise BadReview(f"kind must be 'AdmissionReview', got {_echo(body.get('kind'))}")
    if body.get("apiVersion") != "admission.k8s.io/v1":
        raise BadReview(f"apiVersion must be 'admission.k8s.io/v1', got {_echo(body.get('apiVersion'))}")
    req = body.get("request")
    if not isinstance(req, Mapping):
        raise BadReview("request is missing or not an object")
    if not isinstance(req.get("uid"), str) or not req["uid"]:
        raise BadReview("request.uid is missing")
    return req


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _echo(value: Any) -> str:
    """A value from the body, as an error message may quote it: never more than 80 characters."""
    return _short(repr(value), 80)


class DecisionCache:
    """Recent decisions by everything they depend on, for the replicas and rollouts that send
    the same pod template many times. Bound to one engine and policy: a reload empties it."""

    def __init__(self, size: int = 4096, max_key_chars: int = 8192, max_chars: int = 4 << 20) -> None:
        self.size = size
        self.max_key_chars = max_key_chars
        """Decisions whose key is longer are not kept (only a direct caller sends such objects)."""
        self.max_chars = max_chars
        """The keys kept hold at most this many characters together, whatever the bodies hold."""
        self._owner: tuple[int, int] = (0, 0)
        self._entries: dict[Hashable, tuple[Decision, int]] = {}
        self._chars = 0
        self.hits = 0

    def get(self, engine: Engine, policy: Policy, key: Hashable) -> Decision | None:
        owner = (id(engine), id(policy))
        if owner != self._owner:
            self._owner, self._entries, self._chars = owner, {}, 0
            return None
        hit = self._entries.get(key)
        if hit is None:
            return None
        self.hits += 1
        return hit[0]

    def put(self, key: Hashable, d: Decision, weight: int = 0) -> None:
        if weight > self.max_key_chars:
            return  # a huge object: judged, never kept
        old = self._entries.pop(key, None)
        if old is not None:
            self._chars -= old[1]
        while self._entries and (len(self._entries) >= self.size or self._chars + weight > self.max_chars):
            # oldest first: dicts keep insertion order
            self._chars -= self._entries.pop(next(iter(self._entries)))[1]
        self._entries[key] = (d, weight)
        self._chars += weight


def _weight(key: Any) -> int:
    """About how many characters a cache key holds (strings only: the rest is small)."""
    if isinstance(key, str):
        return len(key)
    if isinstance(key, Container):
        return len(key.image) + len(key.name) + len(key.path) + len(key.field)
    if isinstance(key, tuple | frozenset):
        return sum(_weight(k) for k in key)
    return 8


def _labels_key(obj: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels_of(obj).items()))


def decide(
    body: Any,
    engine: Engine,
    policy: Policy,
    today: dt.date,
    namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None,
    cache: DecisionCache | None = None,
) -> Decision:
    """Decide one review. ``namespace_labels(ns)`` gives a namespace's labels when known."""
    req = _req(body)
    uid, dry_run = req["uid"], req.get("dryRun") is True
    operation = req.get("operation")
    kind = (req.get("kind") or {}).get("kind") if isinstance(req.get("kind"), Mapping) else None
    obj = req.get("object")
    namespace = str(req.get("namespace") or "")
    if operation not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping) or not kind:
        return Decision(uid=uid, dry_run=dry_run, decision="skip")
    group = (req.get("kind") or {}).get("group")
    if group == OWN_GROUP and kind in OWN_KINDS:
        return validate_own(uid, dry_run, str(kind), obj)
    paths = pod_spec_paths(str(kind), policy.custom_kinds)
    if paths is None:
        return Decision(uid=uid, dry_run=dry_run, decision="skip")
    old = req.get("oldObject")
    # per container: an image counts as already running only in the same container it ran in
    old_images = None
    if operation == "UPDATE" and isinstance(old, Mapping):
        old_images = old_images_of(containers_of(old, paths))
    ns_labels = namespace_labels(namespace) if namespace_labels and policy.needs_namespace_labels else None
    containers = containers_of(obj, paths)
    key: Hashable = None
    if cache is not None:
        key = (
            kind,
            operation,
            namespace,
            name_of(obj),
            dry_run,
            tuple(containers),
            _labels_key(obj),
            old_images,
            tuple(sorted(ns_labels.items())) if ns_labels is not None else None,
            today,
        )
        hit = cache.get(engine, policy, key)
        if hit is not None:
            return replace(hit, uid=uid)
    d = _decide(obj, str(kind), namespace, dry_run, old_images, ns_labels, containers, engine, policy, today)
    d.uid = uid
    if cache is not None and not d.pending_images:
        cache.put(key, d, _weight(key))  # a decision waiting on a registry is not kept: the answer may come
    return d


OWN_GROUP = "dlcguard.io"
OWN_KINDS = frozenset({"DLCGuardPolicy", "DLCGuardException"})


def validate_own(uid: str, dry_run: bool, kind: str, obj: Mapping[str, Any]) -> Decision:
    """dlc-guard's own resources, checked the way the controllers will read them, so that a bad
    edit is refused in kubectl with the field named (the CRD schema cannot express all of it)."""
    try:
        if kind == "DLCGuardPolicy":
            load_policy(obj, "DLCGuardPolicy")
        else:
            load_exception(obj)
    except (PolicyError, ExceptionError) as exc:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        name = str((meta or {}).get("name") or "")
        text = f"{kind} {name} is invalid: " + "; ".join(exc.problems)
        return Decision(uid=uid, dry_run=dry_run, allowed=False, message=_short(text, MESSAGE_MAX), decision="deny")
    return Decision(uid=uid, dry_run=dry_run)


def _decide(
    obj: Mapping[str, Any],
    kind: str,
    namespace: str,
    dry_run: bool,
    old_images: OldImages | None,
    ns_labels: Mapping[str, str] | None,
    containers: list[Container],
    engine: Engine,
    policy: Policy,
    today: dt.date,
) -> Decision:
    d = Decision(uid="", dry_run=dry_run)
    j = judge_object(
        obj,
        engine,
        policy,
        today,
        kind=kind,
        namespace=namespace,
        namespace_labels=ns_labels,
        old_images=old_images,
        containers=containers,
    )
    if j is None:
        d.decision = "skip"
        return d
    if j.exempt_namespace:
        d.decision = "skip"
        d.audit["exempt"] = f"namespace {namespace}"
        return d
    d.findings = j.findings
    if d.dry_run:
        d.audit["dryRun"] = "true"
    settings = j.settings
    judged = [f for f in d.findings if f.result.dlc]
    if not judged:
        return d
    worst = j.worst  # the same rule as the operator's: exempt images do not count
    d.worst = worst.verdict if worst is not None else None
    deny = [f for f in judged if f.exempt is None and not f.preexisting and f.result.reaches(settings.deny_level)]
    warn = [f for f in judged if f.exempt is None and f.result.reaches(settings.warn_level)]
    if d.worst is not None:
        d.audit["verdict"] = d.worst
    d.audit["images"] = _short(jsonio.dumps({f.container.name: f.result.verdict for f in judged}).decode(), 2000)
    exempted = [f for f in judged if f.exempt]
    if exempted:
        d.audit["exempted"] = _short(", ".join(f"{f.container.name} ({f.exempt})" for f in exempted), 500)
    if settings.mode == "enforce" and deny:
        d.allowed = False
        d.decision = "deny"
        # one line per container: kubectl prints the API server's message as it is, newlines too
        parts = [_line(f, MESSAGE_MAX) for f in deny]
        prefix = "dlc-guard denied this object (dry run): " if d.dry_run else "dlc-guard denied this object: "
        d.message = _short(prefix + parts[0] if len(parts) == 1 else prefix + "\n" + "\n".join(parts), MESSAGE_MAX)
    elif settings.mode in ("enforce", "warn") and warn:
        d.decision = "warn"
    if settings.mode != "audit":
        denied = {id(f) for f in deny} if not d.allowed else set()
        d.warnings = _warnings([f for f in warn if id(f) not in denied])
        if policy.anaconda_notice == "warnings":
            # the policy asks for it: one line, whatever the number of images it concerns
            notice = next((n for f in [*deny, *warn] for n in f.result.notices), None)
            if notice is not None:
                d.warnings.append(_short(f"dlc-guard: images here are {notice.message}", WARNING_MAX))
    return d


def _line(f: Finding, limit: int) -> str:
    """One finding within ``limit`` characters (256 for a warning). When the full sentence is too long,
    the image to move to is kept and the explanation shortened: it is what the user acts on."""
    r = f.result
    text = f.sentence()
    if len(text) <= limit:
        return text
    text = f"{f.container.name}: {r.image} is {r.verdict}" + (f" (EOP {r.eop.isoformat()})" if r.eop else "")
    fix = r.recommendation
    if fix:
        repo, sep, _ = r.image.partition("@") if "@" in r.image else r.image.rpartition(":")
        if sep and fix.startswith(repo + ":"):
            fix = "tag " + fix[len(repo) + 1 :]  # same repository: the tag says it all
        text += f"; use {fix}"
    elif r.verdict in ("unknown", "invalid"):
        text += f": {r.summary}"  # no fix to offer: the reason is what the user needs
    return _short(text, limit)


def _warnings(findings: list[Finding]) -> list[str]:
    out: list[str] = []
    total = 0
    for i, f in enumerate(sorted(findings, key=lambda f: -RANK[f.result.verdict])):
        w = _line(f, WARNING_MAX)
        if total + len(w) > WARNINGS_TOTAL_MAX:
            out.append(f"dlc-guard: {len(findings) - i} more findings not shown")
            break
        out.append(w)
        total += len(w)
    return out


def response(d: Decision) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": d.uid, "allowed": d.allowed}
    if not d.allowed:
        resp["status"] = {"code": 403, "reason": "Forbidden", "message": d.message or "denied by dlc-guard"}
    if d.warnings:
        resp["warnings"] = d.warnings
    if d.audit:
        resp["auditAnnotations"] = d.audit
    if d.patch is not None:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(jsonio.dumps(d.patch)).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


def for_mutation(body: Any, d: Decision) -> Decision:
    """The ``/mutate`` answer built from the validating decision ``d`` (which may be a cached one
    that ``/validate`` also answers with, so it is never changed): it never denies or warns and
    only records the verdicts as annotations."""
    ops = annotation_patch(body, d)
    return replace(d, allowed=True, message=None, warnings=[], patch=ops or None)


def annotation_patch(body: Any, d: Decision) -> list[dict[str, Any]]:
    """JSONPatch that records the verdicts as annotations on the object (for /mutate), with the
    operator's vocabulary (:func:`policy.judge.annotations_for`)."""
    req = _req(body)
    obj = req.get("object") if isinstance(req.get("object"), Mapping) else {}
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    values = annotations_for(d.findings)
    if not values:
        return []
    ops: list[dict[str, Any]] = []
    if not isinstance(meta, Mapping):
        ops.append({"op": "add", "path": "/metadata", "value": {"annotations": values}})
    elif not isinstance(meta.get("annotations"), Mapping):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": values})
    else:
        for key, value in values.items():
            ops.append(
                {
                    "op": "add",
                    "path": "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1"),
                    "value": value,
                }
            )
    return ops
