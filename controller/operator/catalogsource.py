"""Where the operator's catalog comes from, and refreshing it without ever losing a good one.

The policy's ``spec.catalog`` names the source::

    catalog: {configMap: {namespace: dlc-guard, name: dlc-catalog, key: catalog.json}}
    catalog: {url: "https://mirror.example/dlc-guard/catalog.json"}
    catalog: {path: /var/lib/dlc-guard/upstream}     # a catalog file, or a directory in the
                                                      # upstream layout (a git mirror checkout)

No source means the embedded catalog. A fetched catalog is validated before use; when the
fetch or the validation fails, the last good catalog stays and the error is reported.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.kube.client import ClusterError, Rest
from policy.catalog import Catalog, CatalogError, default_catalog, load_catalog, parse_catalog_text

__all__ = ["CatalogSource", "Fetched"]


@dataclass(frozen=True, slots=True)
class Fetched:
    catalog: Catalog | None = None
    changed: bool = False
    error: str | None = None


class CatalogSource:
    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.spec = dict(spec or {})
        self._digest: str | None = None

    def describe(self) -> str:
        if "configMap" in self.spec:
            cm = self.spec["configMap"] or {}
            return f"ConfigMap {cm.get('namespace')}/{cm.get('name')} key {cm.get('key', 'catalog.json')}"
        if "url" in self.spec:
            return f"URL {self.spec['url']}"
        if "path" in self.spec:
            return f"path {self.spec['path']}"
        return "embedded catalog"

    def _text(self, rest: Rest) -> tuple[str, Catalog | None]:
        if "configMap" in self.spec:
            cm = self.spec["configMap"] or {}
            ns, name, key = cm.get("namespace"), cm.get("name"), cm.get("key", "catalog.json")
            if not ns or not name:
                raise CatalogError(["spec.catalog.configMap: needs namespace and name"], self.describe())
            doc = rest.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{name}")
            data = (doc or {}).get("data") or {}
            if key not in data:
                raise CatalogError([f"(configMap): no key {key!r}"], self.describe())
            return str(data[key]), None
        if "url" in self.spec:
            url = str(self.spec["url"])
            if not url.startswith(("https://", "http://")):
                raise CatalogError(["spec.catalog.url: must be an http(s) URL"], self.describe())
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.read(10 * 1024 * 1024).decode("utf-8"), None
        if "path" in self.spec:
            p = Path(str(self.spec["path"]))
            if p.is_dir():
                from controller.upstream import import_upstream

                result = import_upstream(p)
                text = repr(sorted(result.document.items(), key=lambda kv: kv[0]))
                return text, load_catalog(result.document, str(p))
            return p.read_text(encoding="utf-8"), None
        return "embedded", default_catalog()

    def fetch(self, rest: Rest) -> Fetched:
        try:
            text, catalog = self._text(rest)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest == self._digest:
                return Fetched()
            if catalog is None:
                catalog = parse_catalog_text(text, self.describe())
        except (CatalogError, ClusterError, OSError, ValueError) as exc:
            return Fetched(error=f"{self.describe()}: {exc}")
        first = self._digest is None
        self._digest = digest
        return Fetched(catalog, changed=not first or text != "embedded")
