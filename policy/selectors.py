"""Kubernetes label selectors (``matchLabels`` + ``matchExpressions``), parsed and matched.

The semantics are those of ``metav1.LabelSelector``: every requirement must hold; an empty
selector matches everything. ``In``/``NotIn`` take non-empty value lists, ``Exists`` and
``DoesNotExist`` take none; ``NotIn`` and ``DoesNotExist`` match objects without the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LabelSelector", "parse_selector"]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append(f"!{r.key}")
            elif r.operator == "In" and len(r.values) == 1:
                parts.append(f"{r.key}={next(iter(r.values))}")
            else:
                parts.append(f"{r.key} {r.operator.lower()} ({','.join(sorted(r.values))})")
        return ",".join(parts)


def parse_selector(raw: Any, path: str, problems: list[str]) -> LabelSelector:
    """Parse a selector; every problem is appended to ``problems`` with its path."""
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected {{matchLabels: …, matchExpressions: […]}}")
        return LabelSelector()
    for key in raw:
        if key not in ("matchLabels", "matchExpressions"):
            problems.append(f"{path}.{key}: unknown field (expected matchLabels or matchExpressions)")
    reqs = _match_labels(raw.get("matchLabels") or {}, f"{path}.matchLabels", problems)
    me = raw.get("matchExpressions") or []
    if not isinstance(me, list):
        problems.append(f"{path}.matchExpressions: expected a list")
        me = []
    for i, expr in enumerate(me):
        req = _expression(expr, f"{path}.matchExpressions[{i}]", problems)
        if req is not None:
            reqs.append(req)
    return LabelSelector(tuple(reqs))


def _match_labels(ml: Any, path: str, problems: list[str]) -> list[Requirement]:
    if not isinstance(ml, Mapping):
        problems.append(f"{path}: expected a mapping of label to value")
        return []
    reqs = []
    for k, v in ml.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            problems.append(f"{path}.{k}: expected a string value")
            continue
        reqs.append(Requirement(str(k), "In", frozenset({str(v)})))
    return reqs


def _expression(expr: Any, p: str, problems: list[str]) -> Requirement | None:
    """One ``matchExpressions`` item, or ``None`` (with the problem said) when it is malformed."""
    if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str) or not expr["key"]:
        problems.append(f"{p}: expected {{key, operator, values}}")
        return None
    op = expr.get("operator")
    values = expr.get("values") or []
    why = None
    if op not in OPERATORS:
        why = f"{p}.operator: {op!r} is not one of {list(OPERATORS)}"
    elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        why = f"{p}.values: expected a list of strings"
    elif op in ("In", "NotIn") and not values:
        why = f"{p}.values: {op} needs at least one value"
    elif op in ("Exists", "DoesNotExist") and values:
        why = f"{p}.values: {op} takes no values"
    if why is not None:
        problems.append(why)
        return None
    return Requirement(expr["key"], str(op), frozenset(values))
