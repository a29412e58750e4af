"""Follow every ``DLCGuardException`` in the cluster (list + watch), for the webhook.

Each change hands the whole set of valid exceptions to ``deliver``; rejected ones are logged
once per version and left out (one broken exception never takes the others down). Until the
first list has completed no exception applies: an exemption is never granted on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.listwatch import ListWatch
from policy.exceptions import ExceptionBook, GuardException

__all__ = ["EXCEPTION_GROUP", "EXCEPTION_PLURAL", "EXCEPTION_VERSION", "ExceptionWatch"]

log = logging.getLogger("dlc_guard.exceptions")
EXCEPTION_GROUP, EXCEPTION_VERSION, EXCEPTION_PLURAL = "dlcguard.io", "v1alpha1", "dlcguardexceptions"


class ExceptionWatch(ListWatch):
    name = "exception-watch"

    def __init__(self, deliver: Callable[[tuple[GuardException, ...]], None]) -> None:
        super().__init__()
        self.deliver = deliver
        self.book = ExceptionBook()

    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        return client.CustomObjectsApi(api_client).list_cluster_custom_object, {
            "group": EXCEPTION_GROUP,
            "version": EXCEPTION_VERSION,
            "plural": EXCEPTION_PLURAL,
        }

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self._publish(self.book.replace(items))

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self._publish(self.book.apply(event_type, obj))

    def _publish(self, rejected: list[str]) -> None:
        for why in rejected:
            log.warning("exception rejected: %s", why)
        self.deliver(self.book.exceptions)
