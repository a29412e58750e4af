"""A real OCI registry on loopback for tests: the CNCF Distribution registry from ``make tools``,
over TLS (the certificate of :mod:`tests.tls`), optionally behind htpasswd basic auth, and a
pusher that uploads small DLC-style images through the distribution API itself."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

from tests.cluster import BIN, free_port, stop
from tests.tls import write_cert

REGISTRY = BIN / "registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# the labels of a PyTorch 2.6.0 GPU EC2 training image (end of patch 2026-01-29)
PYTORCH_26_LABELS = {
    "framework": "pytorch",
    "framework_version": "2.6.0",
    "device_type": "gpu",
    "python_version": "py312",
    "cuda_version": "cu126",
    "os_version": "ubuntu22.04",
    "platform": "ec2",
    "dlc_major_version": "1",
    "dlc_minor_version": "3",
}


def available() -> str | None:
    return None if REGISTRY.exists() else f"{REGISTRY} missing: run `make tools`"


@dataclass(frozen=True)
class Registry:
    host: str
    """``127.0.0.1:PORT``"""
    ca: Path
    user: str | None = None
    password: str | None = None

    def _ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def _call(self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Any:
        url = path if path.startswith("https://") else f"https://{self.host}{path}"
        hdrs = dict(headers or {})
        if self.user is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, headers=hdrs, method=method)
        return urllib.request.urlopen(req, context=self._ctx(), timeout=10)

    def blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._call("POST", f"/v2/{repo}/blobs/uploads/") as r:
            location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        with self._call(
            "PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"}
        ) as r:
            assert r.status == 201, r.status
        return digest

    def manifest(self, repo: str, ref: str, doc: Mapping[str, Any], media: str) -> str:
        data = json.dumps(doc).encode()
        with self._call("PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media}) as r:
            assert r.status == 201, r.status
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def image(
        self,
        repo: str,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
        arch: str = "amd64",
        salt: str = "",
    ) -> str:
        """Push a one-layer image (config with ``labels``); its manifest digest."""
        layer = self.blob(repo, f"layer {repo} {arch} {salt}".encode())
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        }
        config_digest = self.blob(repo, json.dumps(config).encode())
        data = json.dumps(config).encode()
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(data)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": len(f"layer {repo} {arch} {salt}")}],
        }
        digest = "sha256:" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()
        return self.manifest(repo, tag or digest, doc, OCI_MANIFEST)

    def index(self, repo: str, manifests: Sequence[tuple[str, str]], tag: str | None = None) -> str:
        """Push an image index over ``(digest, architecture)`` manifests; its digest."""
        entries = []
        for digest, arch in manifests:
            with self._call("GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}) as r:
                size = len(r.read())
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"architecture": arch, "os": "linux"},
                }
            )
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        digest = "sha256:" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()
        return self.manifest(repo, tag or digest, doc, OCI_INDEX)

    def docker_config(self) -> dict[str, Any]:
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"auths": {self.host: {"auth": auth}}}


@contextmanager
def registry(workdir: Path, user: str | None = None, password: str | None = None) -> Iterator[Registry]:
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = write_cert(workdir, "dlc-guard-test-registry")
    port = free_port()
    auth = ""
    if user is not None:
        assert password is not None
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        (workdir / "htpasswd").write_text(f"{user}:{hashed}\n")
        auth = f"auth:\n  htpasswd:\n    realm: dlc-guard-test\n    path: {workdir / 'htpasswd'}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n" + auth
    )
    log = workdir / "registry.log"
    proc = subprocess.Popen([str(REGISTRY), "serve", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"registry exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", context=ctx, timeout=2)
                break
            except urllib.error.HTTPError:
                break  # 401 with auth on: it is up
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"registry not up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)
        yield Registry(f"127.0.0.1:{port}", cert, user, password)
    finally:
        stop(proc)


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a registry too slow)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        done.set()
        t.join()
        for c in held:
            c.close()
        sock.close()
