"""Read a policy document from a YAML file (the CLI's and the webhook's ``--policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policy.policy import Policy, PolicyError, load_policy

__all__ = ["load_policy_file", "read_policy_document", "with_mode"]


def read_policy_document(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"(file): cannot read: {exc.strerror or exc}"], path) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError([f"(file): not UTF-8 text: {exc}"], path) from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError([f"(document): not valid YAML: {exc}"], path) from exc


def with_mode(raw: Any, mode: str | None) -> Any:
    """The document with its mode replaced, whether it is a full resource or a bare spec."""
    if mode is None or not isinstance(raw, dict):
        return raw
    if "spec" in raw or "apiVersion" in raw:
        spec = raw.get("spec") or {}
        return {**raw, "spec": {**spec, "mode": mode} if isinstance(spec, dict) else spec}
    return {**raw, "mode": mode}


def load_policy_file(path: str | None, controller_namespace: str | None = None, mode: str | None = None) -> Policy:
    raw = read_policy_document(path) if path is not None else {}
    return load_policy(with_mode(raw, mode), path or "policy", controller_namespace)
