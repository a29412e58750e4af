from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.reference import InvalidReference, parse_reference

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
        ("foo/bar", "docker.io", "foo/bar", None, None),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", None, None),
        ("index.docker.io/foo/bar:1", "docker.io", "foo/bar", "1", None),
        ("localhost/a", "localhost", "a", None, None),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
        ("Registry.Example.COM/x", "registry.example.com", "x", None, None),
        ("a.b/c__d/e-f.g:_t", "a.b", "c__d/e-f.g", "_t", None),
        (
            "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.9.0-gpu-py312-cu130-ubuntu22.04-ec2",
            "763104351884.dkr.ecr.us-west-2.amazonaws.com",
            "pytorch-training",
            "2.9.0-gpu-py312-cu130-ubuntu22.04-ec2",
            None,
        ),
        (f"r.io/x:t@sha256:{HEX}", "r.io", "x", "t", f"sha256:{HEX}"),
        (f"r.io/x@sha256:{HEX}", "r.io", "x", None, f"sha256:{HEX}"),
        ("r.io/x@sha512:" + "a" * 128, "r.io", "x", None, "sha512:" + "a" * 128),
    ],
)
def test_valid(text: str, registry: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == (registry, path, tag, digest)
    assert ref.original == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        (" ubuntu", "white space"),
        ("ub untu", "not allowed"),
        ("Ubuntu", "must be lowercase"),
        ("foo/Bar", "'Bar' must be lowercase"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("a:", "empty tag"),
        ("a:-x", "tag must start"),
        ("a:x$y", "not allowed"),
        ("a:" + "x" * 129, "at most 128"),
        ("a@sha256:abc", "shorter than 32"),
        ("a@sha256:" + "a" * 63, "64 hex digits"),
        ("a@sha256:" + "A" * 64, "lowercase hex"),
        ("a@sha256", "ALGORITHM:HEX"),
        ("a@@sha256:" + HEX, "more than one"),
        ("a@sha256:" + "g" * 64, "hexadecimal"),
        ("-a/b", "must be lowercase letters"),
        ("a/b_-c", "must be lowercase letters"),
        ("x" * 256, "at most 255"),
    ],
)
def test_invalid(text: str, needle: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert needle in str(info.value)


def test_error_position_points_at_fault() -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference("reg.io/ok/BAD:tag")
    assert info.value.position == len("reg.io/ok/")


component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
host = st.from_regex(r"[a-z0-9]{1,10}(?:\.[a-z0-9]{1,10}){1,3}(?::[0-9]{1,5})?", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", fullmatch=True)
digest = st.from_regex(r"[0-9a-f]{64}", fullmatch=True).map(lambda h: f"sha256:{h}")


@given(host, st.lists(component, min_size=1, max_size=4), st.none() | tag, st.none() | digest)
def test_roundtrip(h: str, comps: list[str], t: str | None, d: str | None) -> None:
    text = f"{h}/{'/'.join(comps)}" + (f":{t}" if t else "") + (f"@{d}" if d else "")
    ref = parse_reference(text)
    assert ref.registry == h
    assert ref.path == "/".join(comps)
    assert ref.tag == t
    assert ref.digest == d
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref.__class__(ref.registry, ref.path, ref.tag, ref.digest, str(ref))


@given(st.text(max_size=80))
def test_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        assert exc.reason
        assert text == exc.reference
    else:
        assert ref.path and ref.registry
