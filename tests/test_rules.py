"""Each rule of the support policy on its own: one function, one signature, one table."""

from __future__ import annotations

import datetime as dt

from policy import rules
from policy.catalog import default_catalog
from policy.evaluate import Engine
from policy.recommend import candidates
from policy.reference import parse_reference
from policy.registries import identify
from policy.resolve import Identity, resolve_tag

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
TODAY = dt.date(2026, 11, 23)


def case(image: str, today: dt.date = TODAY) -> rules.Case:
    engine = Engine(default_catalog(), today)
    ref = parse_reference(image)
    loc = identify(ref, engine.catalog)
    assert loc is not None and ref.tag is not None
    ident = resolve_tag(loc.families, ref.tag)
    assert isinstance(ident, Identity)
    dates = engine.line_dates(ident.family, ident.version.line)
    return rules.Case(engine, image, ref, loc, ident, candidates(ident), dates)


def run(rule: rules.Rule, image: str, today: dt.date = TODAY) -> rules.Tally:
    tally = rules.Tally()
    rule(case(image, today), tally)
    return tally


def codes(t: rules.Tally) -> list[str]:
    return [r.code for r in t.reasons]


def test_the_table_is_the_policy_in_order() -> None:
    assert (
        rules.read_by_grammar,
        rules.newer_than_catalog,
        rules.end_of_patch,
        rules.dependencies,
        rules.releases,
        rules.retired_repository,
        rules.advisories,
    ) == rules.RULES


def test_end_of_patch_alone() -> None:
    old = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
    assert codes(run(rules.end_of_patch, old)) == ["EOP_PASSED"]
    soon = run(rules.end_of_patch, f"{ECR}/pytorch-training:2.10-gpu-py313-ec2")
    assert codes(soon) == ["EOP_SOON"] and soon.next_dates == [dt.date(2027, 1, 22)]
    later = run(rules.end_of_patch, f"{ECR}/pytorch-training:2.10-gpu-py313-ec2", dt.date(2026, 9, 1))
    assert codes(later) == [] and later.next_dates == [dt.date(2027, 1, 21) - dt.timedelta(days=60)]


def test_dependencies_alone() -> None:
    py38 = f"{ECR}/pytorch-training:2.0.1-gpu-py310-cu118-ubuntu20.04-ec2"
    t = run(rules.dependencies, py38)
    assert "OS_EOS" in codes(t) or "PYTHON_EOS" in codes(t)
    assert all(r.severity == "unsupported" for r in t.reasons)
    assert (
        codes(run(rules.dependencies, "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"))
        == []
    )


def test_releases_alone_points_at_the_image_to_move_to() -> None:
    t = run(rules.releases, f"{ECR}/pytorch-inference-neuronx:2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04")
    assert codes(t) == ["NEWER_BUILD"]
    assert t.recommend is not None and t.recommend.tag == "2.9.0-neuronx-py312-sdk2.31.1-ubuntu24.04"
    vllm = run(rules.releases, "public.ecr.aws/deep-learning-containers/vllm:0.22.0-gpu-py312-cu130-ubuntu22.04-ec2")
    assert codes(vllm) == ["NOT_LATEST"] and vllm.recommend is not None


def test_a_rule_that_settles_the_verdict_stops_the_table() -> None:
    beyond = case(f"{ECR}/pytorch-training:9.9.0-gpu-py313-cu130-ubuntu22.04-ec2")
    tally = rules.Tally()
    for rule in rules.RULES:
        rule(beyond, tally)
        if tally.final is not None:
            break
    assert tally.final is not None and tally.final.verdict == "unknown"
    assert tally.final == beyond.engine.evaluate(beyond.text), "the engine stops where the table says"
