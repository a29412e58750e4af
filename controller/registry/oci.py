"""An OCI distribution API client that answers one question: what is this digest?

``resolve`` fetches the manifest by digest (an image index is followed to its linux/amd64
manifest, or its first), then the config blob, and reads the DLC labels. When the labels do not
say, the tags that could point at the digest are asked: the catalog's tags for the repository
first, then the repository's tag list, a bounded number of them. Every body fetched by digest is
checked against that digest.

Authentication follows the registry's challenge: HTTP basic, or a bearer token from the realm the
registry names (the Docker token flow), with :class:`~controller.registry.auth.Credentials`.
Every failure is a :class:`RegistryError` whose message is the reason an ``unknown`` verdict
shows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.registry.auth import Credentials
from policy.digests import DigestIdentity, tag_from_labels

__all__ = ["RegistryClient", "RegistryError"]

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
ACCEPT = ", ".join(sorted(INDEX_TYPES | MANIFEST_TYPES))
MAX_MANIFEST = 4 * 1024 * 1024
MAX_CONFIG = 8 * 1024 * 1024


class RegistryError(Exception):
    """The registry could not say; the message is the reason given to the user."""


@dataclass
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class RegistryClient:
    credentials: Credentials = field(default_factory=Credentials)
    ca_file: str | None = None
    timeout: float = 5.0
    max_tag_probes: int = 200
    scheme: str = "https"
    _tokens: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._ssl = ssl.create_default_context(cafile=self.ca_file)

    # -- the question -------------------------------------------------------------------------
    def resolve(
        self, host: str, repository: str, digest: str, candidates: Sequence[str] = (), framework: str | None = None
    ) -> DigestIdentity:
        body, media = self._manifest(host, repository, digest)
        manifest = _json(body, "manifest")
        if media in INDEX_TYPES or "manifests" in manifest:
            child = _pick(manifest)
            body, media = self._manifest(host, repository, child)
            manifest = _json(body, "manifest")
        config = manifest.get("config") if isinstance(manifest, dict) else None
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            blob = self._get(host, repository, f"blobs/{config['digest']}", "*/*", MAX_CONFIG).body
            _check(blob, config["digest"], "config")
            labels = ((_json(blob, "config") or {}).get("config") or {}).get("Labels") or {}
            if isinstance(labels, dict):
                labels = {str(k): str(v) for k, v in labels.items()}
                tag = tag_from_labels(labels, framework)
                if tag is not None:
                    dlc = {k: v for k, v in labels.items() if _is_dlc_label(k)}
                    return DigestIdentity(tag, "labels", tuple(sorted(dlc.items())))
        tag = self._tag_for(host, repository, digest, candidates)
        if tag is None:
            raise RegistryError("the image has no DLC labels and no tag of the repository points to it")
        return DigestIdentity(tag, "tag")

    def _manifest(self, host: str, repository: str, digest: str) -> tuple[bytes, str]:
        r = self._get(host, repository, f"manifests/{digest}", ACCEPT, MAX_MANIFEST)
        _check(r.body, digest, "manifest")
        media = r.headers.get("content-type", "").split(";")[0].strip()
        return r.body, media

    def _tag_for(self, host: str, repository: str, digest: str, candidates: Sequence[str]) -> str | None:
        tried: set[str] = set()
        for tag in [*candidates, *self._tags(host, repository)]:
            if tag in tried:
                continue
            if len(tried) >= self.max_tag_probes:
                break
            tried.add(tag)
            r = self._request("HEAD", host, repository, f"manifests/{urllib.parse.quote(tag)}", ACCEPT, 0, ok=(404,))
            if r.status == 404:
                continue
            found = r.headers.get("docker-content-digest")
            if found is None:  # the header is optional: hash the manifest itself
                body = self._get(host, repository, f"manifests/{urllib.parse.quote(tag)}", ACCEPT, MAX_MANIFEST).body
                found = "sha256:" + hashlib.sha256(body).hexdigest()
            if found == digest:
                return tag
        return None

    def _tags(self, host: str, repository: str) -> list[str]:
        out: list[str] = []
        path: str | None = "tags/list?n=1000"
        while path is not None and len(out) < self.max_tag_probes:
            r = self._request("GET", host, repository, path, "application/json", 1024 * 1024, ok=(404,))
            if r.status == 404:
                return out
            tags = (_json(r.body, "tag list") or {}).get("tags") or []
            out.extend(str(t) for t in tags)
            path = _next_link(r.headers.get("link"), repository)
        return out

    # -- HTTP -------------------------------------------------------------------------------------
    def _get(self, host: str, repository: str, path: str, accept: str, limit: int) -> _Response:
        return self._request("GET", host, repository, path, accept, limit)

    def _request(
        self,
        method: str,
        host: str,
        repository: str,
        path: str,
        accept: str,
        limit: int,
        ok: tuple[int, ...] = (),
    ) -> _Response:
        url = f"{self.scheme}://{host}/v2/{repository}/{path}"
        headers = {"Accept": accept, "User-Agent": "dlc-guard"}
        auth = self._cached_auth(host, repository)
        if auth:
            headers["Authorization"] = auth
        r = self._send(method, url, headers, limit)
        if r.status == 401:
            auth = self._answer(host, repository, r.headers.get("www-authenticate", ""))
            headers["Authorization"] = auth
            r = self._send(method, url, headers, limit)
            if r.status == 401:
                raise RegistryError(f"{host} refused the credentials for {repository}")
        if r.status == 200 or r.status in ok:
            return r
        if r.status == 404:
            if path.startswith("manifests/sha256:"):
                raise RegistryError("the registry has no such digest in this repository")
            raise RegistryError(f"{host}/{repository}: {path} not found")
        if r.status == 403:
            raise RegistryError(f"{host} denied access to {repository}")
        if r.status == 429:
            raise RegistryError(f"{host} is rate-limiting requests")
        raise RegistryError(f"{host} answered {r.status} for {path}")

    def _send(self, method: str, url: str, headers: Mapping[str, str], limit: int) -> _Response:
        req = urllib.request.Request(url, headers=dict(headers), method=method)
        ctx = self._ssl if url.startswith("https:") else None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=ctx) as resp:
                body = resp.read(limit + 1) if limit else b""
                if limit and len(body) > limit:
                    raise RegistryError(f"{url}: response larger than {limit} bytes")
                return _Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
        except urllib.error.HTTPError as exc:
            return _Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, b"")
        except TimeoutError:
            raise RegistryError(f"{_host(url)} did not answer within {self.timeout:g}s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise RegistryError(f"{_host(url)} did not answer within {self.timeout:g}s") from None
            if isinstance(reason, ssl.SSLError):
                raise RegistryError(f"{_host(url)}: TLS failed: {reason.reason or reason}") from None
            raise RegistryError(f"{_host(url)} unreachable: {getattr(reason, 'strerror', None) or reason}") from None
        except OSError as exc:
            raise RegistryError(f"{_host(url)} unreachable: {exc.strerror or exc}") from None

    # -- authentication -------------------------------------------------------------------------
    def _cached_auth(self, host: str, repository: str) -> str | None:
        with self._lock:
            hit = self._tokens.get((host, repository))
        if hit is not None and hit[1] > time.time():
            return hit[0]
        return None

    def _answer(self, host: str, repository: str, challenge: str) -> str:
        scheme, params = _parse_challenge(challenge)
        creds = self.credentials.for_host(host)
        if scheme == "basic":
            if creds is None:
                raise RegistryError(f"{host} requires authentication: {self.credentials.why_none(host)}")
            value = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            self._remember(host, repository, value, 3600)
            return value
        if scheme == "bearer" and params.get("realm"):
            query = {
                "service": params.get("service", ""),
                "scope": params.get("scope", f"repository:{repository}:pull"),
            }
            url = params["realm"] + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
            headers = {"User-Agent": "dlc-guard"}
            if creds is not None:
                headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            r = self._send("GET", url, headers, 64 * 1024)
            if r.status != 200:
                detail = self.credentials.why_none(host) if creds is None else "credentials refused"
                raise RegistryError(f"{host}: token service answered {r.status} ({detail})")
            doc = _json(r.body, "token") or {}
            token = doc.get("token") or doc.get("access_token")
            if not isinstance(token, str):
                raise RegistryError(f"{host}: token service gave no token")
            value = f"Bearer {token}"
            self._remember(host, repository, value, float(doc.get("expires_in") or 60))
            return value
        raise RegistryError(f"{host} asks for authentication this client does not speak: {challenge[:80]!r}")

    def _remember(self, host: str, repository: str, value: str, seconds: float) -> None:
        with self._lock:
            self._tokens[(host, repository)] = (value, time.time() + max(seconds - 10, 1))


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise RegistryError(f"the {what} is not JSON") from None


def _check(body: bytes, digest: str, what: str) -> None:
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256":
        raise RegistryError(f"unsupported digest algorithm {algo!r}")
    if hashlib.sha256(body).hexdigest() != hexdigest:
        raise RegistryError(f"the registry's {what} does not match its digest {digest[:19]}…")


def _pick(index: Any) -> str:
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RegistryError("the image index lists no manifests")
    plain = [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]
    for e in plain:
        p = e.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == "amd64":
            return str(e["digest"])
    if not plain:
        raise RegistryError("the image index lists no manifests")
    return str(plain[0]["digest"])


def _next_link(link: str | None, repository: str) -> str | None:
    m = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", link or "")
    if m is None:
        return None
    target = urllib.parse.urlsplit(m.group(1))
    prefix = f"/v2/{repository}/"
    path = target.path[len(prefix) :] if target.path.startswith(prefix) else None
    return f"{path}?{target.query}" if path and target.query else path


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _is_dlc_label(key: str) -> bool:
    return key in {
        "framework",
        "framework_version",
        "dlc_major_version",
        "dlc_minor_version",
        "device_type",
        "python_version",
        "cuda_version",
        "os_version",
        "platform",
        "dlc_platform",
        "job_type",
    }
