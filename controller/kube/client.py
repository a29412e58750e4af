"""A Kubernetes API client from the kubeconfig or the in-cluster service account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["ClusterError", "Rest", "collection_path", "connect_api"]


class ClusterError(Exception):
    """The cluster cannot be reached or refused a request; the message says which and why."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status (0: no answer)."""
        self.retry_after = retry_after
        """Seconds the server asked us to wait (429, 503), when it said."""


def connect_api(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An API client from the kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) or in-cluster."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg
        )
    except (ConfigException, OSError) as first:
        if kubeconfig or context:
            raise ClusterError(f"cannot load kubeconfig: {first}") from None
        try:
            cfg = client.Configuration()
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=cfg
            )
        except ConfigException:
            raise ClusterError(f"no kubeconfig and not in a cluster: {first}") from None
    cfg.retries = 1
    return client.ApiClient(cfg)


class Rest:
    """Plain JSON requests through a configured ``kubernetes.client.ApiClient`` (its auth, TLS
    and server), for the few calls that need a path rather than a typed method."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
        accept: str = "application/json",
    ) -> Any:
        import json

        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            m, url, hdrs, payload, _ = self.api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = self.api.call_api(m, url, header_params=hdrs, body=payload)
            data = resp.read()
        except Exception as exc:  # urllib3 connection and TLS errors
            raise ClusterError(f"{method} {path}: {_reason(exc)}") from None
        if resp.status == 404 and ok_missing:
            return None
        if not 200 <= resp.status < 300:
            detail = ""
            try:
                detail = ": " + str(json.loads(data).get("message", ""))
            except (ValueError, AttributeError):
                detail = ""
            retry = resp.headers.get("Retry-After") if resp.headers else None
            raise ClusterError(
                f"{method} {path}: {resp.status} {resp.reason}{detail}",
                resp.status,
                float(retry) if retry and retry.isdigit() else None,
            )
        return json.loads(data) if data else None

    def pages(
        self,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        limit: int = 500,
        accept: str = "application/json",
    ) -> Iterator[dict[str, Any]]:
        """A list, one page (the API's list document) at a time, following ``continue`` tokens."""
        token = ""
        while True:
            q = [*(query or []), ("limit", limit), *([("continue", token)] if token else [])]
            page = self.request("GET", path, query=q, accept=accept) or {}
            yield page
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return


def _reason(exc: Exception) -> str:
    """urllib3 nests the useful part (connection refused, certificate) a few levels down."""
    inner: BaseException = exc
    while isinstance(getattr(inner, "reason", None), BaseException):
        inner = getattr(inner, "reason")  # noqa: B009
    return str(inner) or type(inner).__name__


def collection_path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
