"""Follow one ``DLCGuardPolicy`` resource (cluster-scoped, ``dlcguard.io/v1alpha1``).

The webhook takes its policy from the same resource the operator validates, so a
``kubectl apply`` of the policy reaches admission within a second or two, without a restart.
Each new generation is handed to ``deliver`` (``None`` once the resource is deleted: the
built-in defaults then apply). Status-only updates, such as the operator's conditions,
carry the same generation and are not delivered again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.listwatch import ListWatch

__all__ = ["POLICY_GROUP", "POLICY_PLURAL", "POLICY_VERSION", "PolicyResource"]

POLICY_GROUP, POLICY_VERSION, POLICY_PLURAL = "dlcguard.io", "v1alpha1", "dlcguardpolicies"


class PolicyResource(ListWatch):
    name = "policy-watch"

    def __init__(self, policy_name: str, deliver: Callable[[Mapping[str, Any] | None], None]) -> None:
        super().__init__()
        self.policy_name = policy_name
        self.deliver = deliver
        self.synced = False
        self._seen: tuple[Any, Any] | None = None

    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        return client.CustomObjectsApi(api_client).list_cluster_custom_object, {
            "group": POLICY_GROUP,
            "version": POLICY_VERSION,
            "plural": POLICY_PLURAL,
            "field_selector": f"metadata.name={self.policy_name}",
        }

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self._offer(items[0] if items else None, force=not self.synced)
        self.synced = True

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self._offer(None if event_type == "DELETED" else obj)

    def _offer(self, doc: Mapping[str, Any] | None, force: bool = False) -> None:
        meta = (doc or {}).get("metadata") or {}
        key = None if doc is None else (meta.get("uid"), meta.get("generation"))
        if key == self._seen and not force:
            return
        self._seen = key
        self.deliver(doc)
