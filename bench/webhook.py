"""Webhook throughput and latency over TLS on loopback, against a bare aiohttp floor.

Both servers run as their own processes pinned to one core (``taskset``); the load comes
from vegeta (built from its Go module into ``.tools/bin``) pinned to the other core. Each
server gets the same realistic Pod and Deployment reviews: first at saturation (as fast as
64 connections can go) for throughput, then at a fixed rate for latency percentiles.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.reviews import bodies

ROOT = Path(__file__).resolve().parent.parent
VEGETA = ROOT / ".tools" / "bin" / "vegeta"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


def _wait_healthy(url: str, cafile: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    ctx = ssl.create_default_context(cafile=str(cafile))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", context=ctx, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def _attack(targets: Path, cafile: Path, rate: int, seconds: float) -> dict[str, Any]:
    cmd = [
        *_pin(1),
        str(VEGETA),
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-root-certs={cafile}",
        f"-duration={seconds}s",
        "-timeout=10s",
        "-keepalive=true",
        "-http2=false",
    ]
    cmd += ["-rate=0", "-max-workers=64", "-workers=64"] if rate == 0 else [f"-rate={rate}/s"]
    attack = subprocess.run(cmd, check=True, capture_output=True)
    report = subprocess.run([str(VEGETA), "report", "-type=json"], input=attack.stdout, check=True, capture_output=True)
    data: dict[str, Any] = json.loads(report.stdout)
    return data


def _measure(name: str, cmd: list[str], tmp: Path, cafile: Path, quick: bool) -> dict[str, Any]:
    port = _free_port()
    url = f"https://127.0.0.1:{port}"
    targets = tmp / f"{name}.targets"
    with targets.open("w") as fh:
        for body in bodies():
            fh.write(
                json.dumps(
                    {
                        "method": "POST",
                        "url": url + "/validate",
                        "body": base64.b64encode(body).decode(),
                        "header": {"Content-Type": ["application/json"]},
                    }
                )
                + "\n"
            )
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen([*_pin(0), *cmd, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, cafile, proc)
        seconds = 4 if quick else 15
        _attack(targets, cafile, 200, 2)  # warm-up: TLS sessions, caches
        saturation = _attack(targets, cafile, 0, seconds)
        fixed = _attack(targets, cafile, 300, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    for run in (saturation, fixed):
        if run.get("success", 0) < 1:
            raise RuntimeError(f"{name}: not every request succeeded: {run.get('status_codes')} {run.get('errors')}")
    lat = fixed["latencies"]
    return {
        "rps": round(saturation["throughput"]),
        "saturation_p99_ms": round(saturation["latencies"]["99th"] / 1e6, 2),
        "p50_ms": round(lat["50th"] / 1e6, 3),
        "p99_ms": round(lat["99th"] / 1e6, 3),
        "fixed_rate": 300,
        "requests": saturation["requests"] + fixed["requests"],
    }


def run(quick: bool = False) -> dict[str, Any]:
    if not VEGETA.exists():
        raise RuntimeError(f"{VEGETA} missing: run `make bench` (it builds vegeta)")
    from tests.tls import write_cert

    with tempfile.TemporaryDirectory(prefix="dlc-guard-bench-") as d:
        tmp = Path(d)
        cert, key = write_cert(tmp)
        tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
        baseline = _measure("baseline", [sys.executable, "-m", "bench.baseline", *tls], tmp, cert, quick)
        webhook_cmd = [sys.executable, "-m", "controller.cli.main", "webhook", "--host", "127.0.0.1", *tls]
        webhook = _measure("webhook", [*webhook_cmd, "--mode", "enforce"], tmp, cert, quick)
    return {
        "webhook_rps": webhook["rps"],
        "baseline_rps": baseline["rps"],
        "ratio": round(webhook["rps"] / baseline["rps"], 3),
        "p50_ms": webhook["p50_ms"],
        "p99_ms": webhook["p99_ms"],
        "baseline_p50_ms": baseline["p50_ms"],
        "baseline_p99_ms": baseline["p99_ms"],
        "fixed_rate": 300,
        "pinned": bool(_pin(0)),
        "bodies": len(bodies()),
        "body_bytes": sum(len(b) for b in bodies()) // len(bodies()),
    }
