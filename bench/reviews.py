"""Realistic AdmissionReview bodies, as kube-apiserver sends them (managedFields and all)."""

from __future__ import annotations

import json
import uuid
from typing import Any

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
IMAGES = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023",  # supported
    f"{ECR}/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2",  # expiring
    "ghcr.io/example-org/feature-store-api:4.2.1",  # not a DLC image
    f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2",  # unsupported: denied in enforce mode
)


def _pod_spec(image: str) -> dict[str, Any]:
    return {
        "serviceAccountName": "trainer",
        "nodeSelector": {"node.kubernetes.io/instance-type": "p5.48xlarge"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "fsx-datasets"}},
            {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        ],
        "initContainers": [
            {"name": "fetch-weights", "image": image, "command": ["python", "-m", "fetch"], "resources": {}},
        ],
        "containers": [
            {
                "name": "trainer",
                "image": image,
                "command": ["torchrun", "--nproc-per-node=8", "train.py"],
                "env": [{"name": f"NCCL_VAR_{i}", "value": str(i)} for i in range(12)],
                "resources": {
                    "limits": {"nvidia.com/gpu": "8", "vpc.amazonaws.com/efa": "32"},
                    "requests": {"cpu": "96", "memory": "1000Gi"},
                },
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "data", "mountPath": "/data"}],
            },
            {
                "name": "metrics",
                "image": "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            },
        ],
    }


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.UUID(int=hash(name) & ((1 << 128) - 1))),
        "labels": {"app.kubernetes.io/name": name, "team": "ml-platform"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 600 + "}"},
        "managedFields": [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {f"f:l{i}": {} for i in range(20)}}},
            }
        ],
    }


def review(kind: str, image: str, index: int = 0) -> dict[str, Any]:
    namespace = "ml-training"
    name = f"job-{index}"
    spec = _pod_spec(image)
    if kind == "Pod":
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace), "spec": spec}
        group, version, resource = "", "v1", "pods"
    else:
        obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, namespace),
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": spec},
            },
        }
        group, version, resource = "apps", "v1", "deployments"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl"},
        },
    }


def bodies() -> list[bytes]:
    """Pods and Deployments over supported, expiring, non-DLC and unsupported images (8 bodies)."""
    return [
        json.dumps(review(kind, image, i)).encode() for i, image in enumerate(IMAGES) for kind in ("Pod", "Deployment")
    ]
