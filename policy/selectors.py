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
    reqs: list[Requirement] = []
    for key in raw:
        if key not in ("matchLabels", "matchExpressions"):
            problems.append(f"{path}.{key}: unknown field (expected matchLabels or matchExpressions)")
    ml = raw.get("matchLabels") or {}
    if not isinstance(ml, Mapping):
        problems.append(f"{path}.matchLabels: expected a mapping of label to value")
    else:
        for k, v in ml.items():
            if not isinstance(v, str | int | float | bool) or isinstance(v, bool):
                problems.append(f"{path}.matchLabels.{k}: expected a string value")
                continue
            reqs.append(Requirement(str(k), "In", frozenset({str(v)})))
    me = raw.get("matchExpressions") or []
    if not isinstance(me, list):
        problems.append(f"{path}.matchExpressions: expected a list")
        me = []
    for i, expr in enumerate(me):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str) or not expr["key"]:
            problems.append(f"{p}: expected {{key, operator, values}}")
            continue
        op = expr.get("operator")
        if op not in OPERATORS:
            problems.append(f"{p}.operator: {op!r} is not one of {list(OPERATORS)}")
            continue
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(f"{p}.values: expected a list of strings")
            continue
        if op in ("In", "NotIn") and not values:
            problems.append(f"{p}.values: {op} needs at least one value")
            continue
        if op in ("Exists", "DoesNotExist") and values:
            problems.append(f"{p}.values: {op} takes no values")
            continue
        reqs.append(Requirement(expr["key"], op, frozenset(values)))
    return LabelSelector(tuple(reqs))
