from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.tags import parse_tag
from policy.version import InvalidVersion, parse_version


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (
            "2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker-v1.8",
            dict(
                version="2.3.0",
                accelerator="gpu",
                python="3.11",
                cuda="cu121",
                os="ubuntu20.04",
                platform="sagemaker",
                build=(1, 8),
                stem="2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker",
            ),
        ),
        ("2.6.0-gpu-py312-cu126-ubuntu22.04-ec2", dict(version="2.6.0", platform="ec2", build=None)),
        ("2.10-gpu-py313-ec2", dict(version="2.10", python="3.13", os=None)),
        ("2.13.0-cu133-amzn2023", dict(version="2.13.0", accelerator="gpu", os="amzn2023")),
        (
            "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04",
            dict(version="2.9.0", extras={"transformers": "5.3.0"}),
        ),
        ("0.36.0-lmi28.0.0-cu130", dict(version="0.36.0", extras={"lmi": "28.0.0"})),
        (
            "2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04",
            dict(version="2.9.0", accelerator="neuronx", extras={"sdk": "2.30.0"}, os="ubuntu24.04"),
        ),
        ("3.2-0", dict(version="3.2-0")),
        ("1.4-2-py312", dict(version="1.4-2", python="3.12")),
        (
            "server-cuda-v2.3",
            dict(version=None, accelerator="gpu", words=("server",), build=(2, 3), stem="server-cuda"),
        ),
        ("22.07-py3", dict(version="22.07", python="3")),
        ("b9522-gpu-cu130-ubuntu24.04-v1.0", dict(version="b9522", build=(1, 0))),
        ("2.0.1-tei1.9.3-gpu-py310-cu129-ubuntu24.04", dict(version="2.0.1", extras={"tei": "1.9.3"})),
        ("1.15.5-gpu-py36-cu100-ubuntu18.04", dict(version="1.15.5", python="3.6", os="ubuntu18.04")),
    ],
)
def test_tag_grammar(tag: str, expected: dict[str, object]) -> None:
    info = parse_tag(tag)
    for key, value in expected.items():
        got = getattr(info, key)
        if key == "version":
            got = None if got is None else got.text
        assert got == value, key


@given(st.text(alphabet="abcdefgpuyv0123456789.-_", max_size=60))
def test_tag_grammar_never_raises(tag: str) -> None:
    info = parse_tag(tag)
    assert info.tag == tag


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2.7.0", "2.7.1"),
        ("2.9", "2.10"),
        ("0.22.1rc0", "0.22.1"),
        ("3.0-5", "3.2-0"),
        ("3.2-0", "3.2-1"),
        ("0.19.1+amzn2023.a", "0.22.0"),
        ("b9000", "b9522"),
        ("2.10", "2.10.0"),  # PEP 440 calls them equal; the floating tag sorts first
        ("1.0dev1", "1.0a1"),
        ("1.0a1", "1.0b1"),
        ("1.0b1", "1.0rc1"),
        ("1.0rc1", "1.0"),
        ("1.0", "1.0-0"),  # a package release is a post-release
        ("24.09", "24.10"),
    ],
)
def test_version_order(older: str, newer: str) -> None:
    assert parse_version(older) < parse_version(newer)


def test_local_parts_do_not_order() -> None:
    a, b = parse_version("0.19.1+amzn2023.a"), parse_version("0.19.1+amzn2023.b")
    assert not a < b and not b < a and a.key == b.key
    assert a != b, "different builds are different versions"


@pytest.mark.parametrize("text", ["v2.9", "1!2.0", "2.9.post1", " 2.9", "2.9.0.dev", "2..9", ""])
def test_versions_are_spelled_as_dlc_tags_spell_them(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(text)


def test_version_line_and_errors() -> None:
    assert parse_version("2.10.1").line == "2.10"
    assert parse_version("0.27.0+amzn2023.4bdc8a78").public == "0.27.0"
    with pytest.raises(InvalidVersion):
        parse_version("two")
