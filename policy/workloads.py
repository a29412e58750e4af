"""Where the containers of a Kubernetes object are: Pod, every kind with a pod template, and
custom resources whose pod templates sit at configurable paths. Pure dictionary walking.

A path is dotted; ``*`` walks every value of a mapping or every item of a list:
``spec.pytorchReplicaSpecs.*.template.spec``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from sys import intern
from typing import Any

__all__ = [
    "BUILTIN_KINDS",
    "BUILTIN_RESOURCES",
    "DEFAULT_CUSTOM_KINDS",
    "Container",
    "containers_of",
    "controlled_by",
    "pod_spec_paths",
]

TEMPLATE = ("spec.template.spec",)
_BUILTIN: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # kind: (API group, version, plural, where its pod specs sit)
    "Pod": ("", "v1", "pods", ("spec",)),
    "Deployment": ("apps", "v1", "deployments", TEMPLATE),
    "ReplicaSet": ("apps", "v1", "replicasets", TEMPLATE),
    "StatefulSet": ("apps", "v1", "statefulsets", TEMPLATE),
    "DaemonSet": ("apps", "v1", "daemonsets", TEMPLATE),
    "Job": ("batch", "v1", "jobs", TEMPLATE),
    "ReplicationController": ("", "v1", "replicationcontrollers", TEMPLATE),
    "CronJob": ("batch", "v1", "cronjobs", ("spec.jobTemplate.spec.template.spec",)),
    "PodTemplate": ("", "v1", "podtemplates", ("template.spec",)),
}
"""The one list of the built-in pod-bearing kinds (the chart's rules are tested against it)."""
BUILTIN_KINDS: dict[str, tuple[str, ...]] = {kind: k[3] for kind, k in _BUILTIN.items()}
BUILTIN_RESOURCES: dict[str, tuple[str, str, str]] = {kind: k[:3] for kind, k in _BUILTIN.items()}
"""kind → (group, version, plural) of its API collection."""

DEFAULT_CUSTOM_KINDS: dict[str, tuple[str, ...]] = {
    "PyTorchJob": ("spec.pytorchReplicaSpecs.*.template.spec",),
    "TFJob": ("spec.tfReplicaSpecs.*.template.spec",),
    "MPIJob": ("spec.mpiReplicaSpecs.*.template.spec",),
    "RayCluster": ("spec.headGroupSpec.template.spec", "spec.workerGroupSpecs.*.template.spec"),
    "RayJob": (
        "spec.rayClusterSpec.headGroupSpec.template.spec",
        "spec.rayClusterSpec.workerGroupSpecs.*.template.spec",
    ),
    "LeaderWorkerSet": (
        "spec.leaderWorkerTemplate.leaderTemplate.spec",
        "spec.leaderWorkerTemplate.workerTemplate.spec",
    ),
}

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, slots=True)
class Container:
    field: str
    """``containers``, ``initContainers`` or ``ephemeralContainers``."""
    name: str
    image: str
    path: str
    """Where the image sits, e.g. ``spec.template.spec.containers[0].image``."""

    @property
    def slot(self) -> tuple[str, str]:
        """Which container this is across an update: its list (``spec.template.spec.containers``)
        and its name. Two containers in the same slot are the same container."""
        return self.path.rsplit("[", 1)[0], self.name


def controlled_by(obj: Mapping[str, Any], kinds: Iterable[str]) -> bool:
    """Whether a controller of one of ``kinds`` owns the object (its owner is judged instead)."""
    meta = obj.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, Mapping) else None
    wanted = set(kinds)
    return any(isinstance(r, Mapping) and bool(r.get("controller")) and r.get("kind") in wanted for r in refs or [])


def pod_spec_paths(kind: str, custom: Mapping[str, tuple[str, ...]] | None = None) -> tuple[str, ...] | None:
    if kind in BUILTIN_KINDS:
        return BUILTIN_KINDS[kind]
    table = DEFAULT_CUSTOM_KINDS if custom is None else custom
    return table.get(kind)


@lru_cache(maxsize=512)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _is_map(node: Any) -> bool:
    return type(node) is dict or isinstance(node, Mapping)  # the exact-type test first: it is the common case


def _walk(node: Any, parts: tuple[str, ...], i: int, at: str) -> Iterator[tuple[str, Any]]:
    if i == len(parts):
        yield at, node
        return
    head = parts[i]
    if head == "*":
        if _is_map(node):
            for key, value in node.items():
                yield from _walk(value, parts, i + 1, f"{at}.{key}" if at else str(key))
        elif type(node) is list:
            for n, value in enumerate(node):
                yield from _walk(value, parts, i + 1, f"{at}[{n}]")
        return
    if _is_map(node) and head in node:
        yield from _walk(node[head], parts, i + 1, f"{at}.{head}" if at else head)


def containers_of(obj: Mapping[str, Any], paths: tuple[str, ...]) -> list[Container]:
    """Every container image of ``obj`` at ``paths``; malformed parts are skipped, not fatal."""
    out: list[Container] = []
    for path in paths:
        for at, spec in _walk(obj, _split(path), 0, ""):
            if not _is_map(spec):
                continue
            for fld in CONTAINER_FIELDS:
                items = spec.get(fld)
                if type(items) is not list:
                    continue
                for i, c in enumerate(items):
                    if type(c) is not dict and not isinstance(c, Mapping):
                        continue
                    image = c.get("image")
                    if type(image) is str:
                        name = c.get("name")
                        path = intern(f"{at}.{fld}[{i}].image")  # the same few paths, shared
                        out.append(Container(fld, name if type(name) is str else f"#{i}", image, path))
    return out
