from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli.main import main
from tests.conftest import ROOT

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), io.StringIO(stdin), out, err)
    return code, out.getvalue(), err.getvalue()


def test_json_output_in_input_order() -> None:
    code, out, _ = run("check", "--as-of", "2026-11-23", "-o", "json", NEW, OLD, "nginx", "bad ref")
    assert code == 1
    data = json.loads(out)
    assert [d["image"] for d in data] == [NEW, OLD, "nginx", "bad ref"]
    assert [d["verdict"] for d in data] == ["supported", "unsupported", "not-dlc", "invalid"]
    old = data[1]
    assert old["dlc"] is True and old["repository"] == "pytorch-training" and old["framework"] == "PyTorch"
    assert old["version"] == "2.6.0" and old["eop"] == "2026-01-29"
    assert {"code", "severity", "message"} <= set(old["reasons"][0])
    assert old["recommendation"].startswith(f"{ECR}/pytorch-training:2.10")


@pytest.mark.parametrize(
    ("images", "fail_on", "code"),
    [
        ([NEW], "unsupported", 0),
        ([OLD], "unsupported", 1),
        ([SOON], "unsupported", 0),
        ([SOON], "expiring", 1),
        ([OLD], "never", 0),
        (["nginx"], "expiring", 0),
        (["Bad Ref"], "unknown", 1),
    ],
)
def test_exit_codes(images: list[str], fail_on: str, code: int) -> None:
    assert run("check", "--as-of", "2026-11-23", "--fail-on", fail_on, *images)[0] == code


def test_stdin_and_table() -> None:
    code, out, _ = run("check", "--as-of", "2026-11-23", "-", stdin=f"# comment\n{OLD}\n\n{NEW}\n")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["VERDICT", "IMAGE", "FRAMEWORK"]
    assert any(line.startswith("unsupported") and OLD in line for line in lines)
    assert any("-> use" in line for line in lines)
    assert "\033[" not in out  # not a terminal: no colour
    assert lines[-2] == "1 unsupported, 1 supported"
    assert lines[-1].startswith("note (ANACONDA_LICENSE, 1 image): no longer actively maintained")
    quiet = run("check", "--as-of", "2026-11-23", "--no-anaconda-notice", OLD, NEW)[1].splitlines()
    assert quiet[-1] == "1 unsupported, 1 supported"


def test_warn_days_changes_verdict() -> None:
    _, out, _ = run("check", "--as-of", "2026-11-23", "--warn-days", "10", "-o", "json", SOON)
    assert json.loads(out)[0]["verdict"] == "supported"


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "--as-of", "2026-02-30", NEW],
        ["check", "--warn-days", "-3", NEW],
        ["check", "--fail-on", "sometimes", NEW],
        ["check", "-o", "xml", NEW],
        [],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    assert run(*argv)[0] == 2


def test_bad_catalog_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"schema": "dlc-guard.io/catalog/v1", "registries": {"dlc": {"us-west-2": "1"}}}))
    code, _, err = run("check", "--catalog", str(bad), NEW)
    assert code == 2
    assert "registries.dlc.us-west-2: account must be 12 digits" in err
    assert run("check", "--catalog", str(tmp_path / "none.json"), NEW)[0] == 2


def test_empty_stdin_is_usage_error() -> None:
    code, _, err = run("check", "-", stdin="\n# nothing\n")
    assert code == 2 and "no image references" in err


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "dlc-guard"
    proc = subprocess.run(
        [str(exe), "check", "--as-of", "2026-11-23", "-o", "json", OLD], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["verdict"] == "unsupported"


def test_version_names_the_package_and_the_catalog() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli.main", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 0
    assert r.stdout.startswith("dlc-guard ") and "catalog aws/deep-learning-containers@" in r.stdout
    assert "2026-08-21" in r.stdout


def test_an_invalid_reference_fails_unless_told_never() -> None:
    assert run("check", "--as-of", "2026-11-23", "nginx:1.27", "not a reference!")[0] == 1
    assert run("check", "--as-of", "2026-11-23", "--fail-on", "never", "not a reference!")[0] == 0
    assert run("check", "--as-of", "2026-11-23", "nginx:1.27")[0] == 0


def test_every_option_of_every_command_has_help() -> None:
    import argparse

    from controller.cli.main import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}")
            elif not action.help:
                missing.append(f"{prefix} {action.option_strings or action.dest}")

    walk(build_parser(), "dlc-guard")
    assert not missing, missing
