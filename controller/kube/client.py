"""A Kubernetes API client from the kubeconfig or the in-cluster service account."""

from __future__ import annotations

from typing import Any

__all__ = ["ClusterError", "connect_api"]


class ClusterError(Exception):
    """The cluster cannot be reached or refused a request; the message says which and why."""


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
