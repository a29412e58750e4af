"""The container image's recipe. No Docker engine here, so the Dockerfile is checked for what it
promises (multi-stage, pinned base, non-root, one entrypoint), and its build step is run for
real: the wheel it installs is built and run from a clean directory, catalog included."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[list[str]]:
    """Instructions per stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_base_image_is_pinned_to_a_patch_release() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert default is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default.group(1))
    froms = [s[0] for s in stages()]
    assert len(froms) >= 2, "multi-stage"
    assert all("${PYTHON_IMAGE}" in f for f in froms), "every stage on the same pinned base"
    assert "latest" not in DOCKERFILE


def test_final_stage_runs_as_non_root_without_build_tools() -> None:
    final = stages()[-1]
    user = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert len(user) == 1
    uid, _, gid = user[0].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    values = yaml.safe_load((ROOT / "deploy/helm/dlc-guard/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid), "the chart and the image agree"
    body = " ".join(final)
    for tool in ("apt-get", "gcc", "pip install", "pip wheel"):
        assert tool not in body, tool
    assert 'ENTRYPOINT ["dlc-guard"]' in final
    copies = [i for i in final if i.upper().startswith("COPY ")]
    assert copies and all("--from=build" in c for c in copies), "only the built virtualenv is copied in"


def test_the_wheel_the_image_installs_carries_the_catalog(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("dlc_guard-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "dlc-guard = controller.cli.main:main" in z.read(entry_points).decode()
        assert "policy/data/catalog.json" in names
        assert not any(n.startswith("tests/") for n in names)
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert "License-Expression: Apache-2.0" in meta  # PEP 639, as the image's licenses label
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        z.extractall(tmp_path / "site")
    site = tmp_path / "site"
    # run from the unpacked wheel alone (dependencies from this environment): the embedded
    # catalog is found inside the package, not in the source tree
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import policy; assert policy.__file__.startswith(sys.argv[1]), policy.__file__;"
        "from controller.cli.main import main; sys.exit(main(['catalog', 'info']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"^frameworks: +\d+$", r.stdout, re.M), r.stdout
