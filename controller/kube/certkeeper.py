"""Keep the webhook's TLS Secret and the webhook configurations' ``caBundle`` current, through
the API (the controller side of :mod:`controller.certs`), and follow the Secret (the webhook
side: new certificates are served without a restart or a kubelet volume refresh).

One keeper runs at a time (the operator's active peer). Each pass reads the Secret and the
bundle the configurations carry, asks :func:`controller.certs.plan`, publishes the bundle first
and writes the Secret after, so that the API server trusts a certificate before it is served.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.certs import Validity, plan
from controller.kube.client import ClusterError, Rest
from controller.kube.listwatch import NamedObjectWatch

__all__ = ["CertKeeper", "KeeperSettings", "SecretWatch"]

log = logging.getLogger("dlc_guard.certs")
WEBHOOK_CONFIGURATIONS = ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")


@dataclass(frozen=True)
class KeeperSettings:
    namespace: str
    secret: str
    names: tuple[str, ...]
    """The serving certificate's names: the Service's DNS names (and any extra, e.g. an IP)."""
    webhook_configurations: tuple[str, ...]
    """Names of the Validating and Mutating webhook configurations whose caBundle follows."""
    validity: Validity = field(default_factory=Validity)
    settle: dt.timedelta = dt.timedelta(seconds=60)


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in sorted(data.items())}


def _unb64(data: Mapping[str, str] | None) -> dict[str, bytes]:
    out = {}
    for k, v in (data or {}).items():
        try:
            out[k] = base64.b64decode(v)
        except ValueError:
            continue
    return out


class CertKeeper:
    def __init__(self, rest: Rest, settings: KeeperSettings, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.rest = rest
        self.s = settings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @property
    def _secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.s.namespace}/secrets/{self.s.secret}"

    def _configurations(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for plural in WEBHOOK_CONFIGURATIONS:
            for name in self.s.webhook_configurations:
                path = f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}"
                doc = self.rest.request("GET", path, ok_missing=True)
                if doc is not None:
                    out.append((path, doc))
        return out

    @staticmethod
    def _published(configs: Sequence[tuple[str, Mapping[str, Any]]]) -> bytes:
        """The bundle every webhook of every configuration carries (the intersection: a CA counts as
        published only once all of them trust it)."""
        bundles = [
            base64.b64decode(h.get("clientConfig", {}).get("caBundle") or "")
            for _, doc in configs
            for h in doc.get("webhooks") or []
        ]
        # mid-patch (some webhooks updated, some not) nothing counts as published yet
        return bundles[0] if bundles and all(b == bundles[0] for b in bundles) else b""

    def reconcile(self) -> list[str]:
        """One pass; returns what changed (empty: all current)."""
        secret = self.rest.request("GET", self._secret_path, ok_missing=True)
        configs = self._configurations()
        result = plan(
            _unb64((secret or {}).get("data")),
            self.clock(),
            self.s.names,
            self.s.validity,
            published=self._published(configs),
            settle=self.s.settle,
        )
        bundle = base64.b64encode(result.bundle).decode()
        changed = list(result.changes)
        for path, doc in configs:  # the bundle first: trusted before it is served
            hooks = doc.get("webhooks") or []
            if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
                continue
            patch = [
                {
                    "op": "replace" if "caBundle" in (h.get("clientConfig") or {}) else "add",
                    "path": f"/webhooks/{i}/clientConfig/caBundle",
                    "value": bundle,
                }
                for i, h in enumerate(hooks)
            ]
            self.rest.request("PATCH", path, patch, None, "application/json-patch+json")
            changed.append(f"caBundle of {doc['metadata']['name']}")
        if result.changes or secret is None:
            meta: dict[str, Any] = {
                "name": self.s.secret,
                "namespace": self.s.namespace,
                "labels": {"app.kubernetes.io/managed-by": "dlc-guard"},
            }
            body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": meta}
            body["data"] = _b64(result.data)
            if secret is None:
                self.rest.request("POST", f"/api/v1/namespaces/{self.s.namespace}/secrets", body)
            else:  # optimistic: a conflict (another writer) fails this pass, the next one reads again
                meta["resourceVersion"] = secret["metadata"]["resourceVersion"]
                self.rest.request("PUT", self._secret_path, body)
        if changed:
            log.info("webhook certificate: %s", "; ".join(changed))
        return changed

    def reconcile_safely(self) -> list[str]:
        try:
            return self.reconcile()
        except ClusterError as exc:  # a conflict or an outage: the next pass tries again
            log.warning("webhook certificate pass failed, trying again: %s", exc)
            return []


class SecretWatch(NamedObjectWatch):
    """Follow one TLS Secret; ``deliver(cert_file, key_file)`` gets a fresh pair of files (0600,
    in ``directory``) whenever its certificate or key changes."""

    name = "tls-secret-watch"
    list_method = "list_namespaced_secret"

    def __init__(self, namespace: str, name: str, directory: str, deliver: Callable[[str, str], None]) -> None:
        super().__init__(namespace, name)
        self.directory, self.deliver = directory, deliver
        self._last: tuple[bytes, bytes] | None = None

    def changed(self, obj: Mapping[str, Any]) -> None:
        data = _unb64(obj.get("data"))
        pair = (data.get("tls.crt", b""), data.get("tls.key", b""))
        if not all(pair) or pair == self._last:
            return
        self._last = pair
        files = []
        for suffix, content in zip((".crt", ".key"), pair, strict=True):
            fd, path = tempfile.mkstemp(prefix="dlc-guard-tls-", suffix=suffix, dir=self.directory)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            files.append(path)
        self.deliver(files[0], files[1])
