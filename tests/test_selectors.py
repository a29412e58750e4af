"""Label selectors and the policy's exemption selectors."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.policy import PolicyError, load_policy
from policy.selectors import parse_selector

LABELS = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]), max_size=3)


def sel(raw: object) -> object:
    problems: list[str] = []
    s = parse_selector(raw, "sel", problems)
    assert not problems, problems
    return s


@pytest.mark.parametrize(
    ("raw", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "x"}}, {"a": "x", "b": "y"}, True),
        ({"matchLabels": {"a": "x"}}, {"a": "y"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}, {"a": "y"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {"a": "x"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "x"}, False),
        (
            {"matchLabels": {"b": "y"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]},
            {"a": "x", "b": "z"},
            False,
        ),
    ],
)
def test_selector_semantics(raw: object, labels: dict[str, str], expected: bool) -> None:
    assert sel(raw).matches(labels) is expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("x", "expected {matchLabels"),
        ({"matchLabel": {}}, "sel.matchLabel: unknown field"),
        ({"matchExpressions": [{"key": "a", "operator": "Maybe"}]}, "operator: 'Maybe'"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "In needs at least one value"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "takes no values"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "matchExpressions[0]: expected {key"),
        ({"matchLabels": {"a": ["x"]}}, "matchLabels.a: expected a string"),
    ],
)
def test_selector_problems_are_named(raw: object, needle: str) -> None:
    problems: list[str] = []
    parse_selector(raw, "sel", problems)
    assert any(needle in p for p in problems), problems


@given(LABELS, LABELS)
def test_match_labels_is_subset(want: dict[str, str], have: dict[str, str]) -> None:
    s = sel({"matchLabels": want})
    assert s.matches(have) is (want.items() <= have.items())  # type: ignore[attr-defined]


def test_policy_exemption_with_namespace_selector() -> None:
    policy = load_policy(
        {
            "exemptions": [
                {"namespaceSelector": {"matchLabels": {"team": "research"}}, "expires": "2027-01-01"},
            ]
        }
    )
    today = dt.date(2026, 11, 23)
    assert policy.needs_namespace_labels
    assert policy.exemptions_for("lab", {}, today, {"team": "research"})
    assert not policy.exemptions_for("lab", {}, today, None)  # unknown labels never exempt
    assert not policy.exemptions_for("lab", {}, dt.date(2027, 1, 2), {"team": "research"})
    with pytest.raises(PolicyError) as exc:
        load_policy({"exemptions": [{"namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "Is"}]}}]})
    assert "spec.exemptions[0].namespaceSelector.matchExpressions[0].operator" in str(exc.value)
