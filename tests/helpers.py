"""A small catalog built in code, so that each rule is tested on data the test controls."""

from __future__ import annotations

from typing import Any


def img(version: str, tags: list[str], **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": version,
        "accelerator": "gpu",
        "platform": "ec2",
        "python": "3.12",
        "os": "ubuntu22.04",
        "tags": tags,
    }
    out.update(kw)
    return {k: v for k, v in out.items() if v is not None}


def mini_catalog_doc() -> dict[str, Any]:
    return {
        "schema": "dlc-guard.io/catalog/v1",
        "source": {"kind": "test", "date": "2026-01-01"},
        "registries": {
            "dlc": {"us-west-2": "763104351884", "cn-north-1": "727897471807"},
            "algorithms": {"us-west-2": "246618743249"},
            "public": ["public.ecr.aws/deep-learning-containers"],
        },
        "dependencies": {
            "python": {"3.8": "2024-10-07", "3.10": "2026-10-31", "3.12": "2028-10-31"},
            "os": {"ubuntu20.04": "2025-05-31", "ubuntu22.04": "2027-06-01", "amzn2": "2026-06-30"},
        },
        "frameworks": {
            "PyTorch": {
                "latest_only": False,
                "lines": {
                    "1.13": {"ga": "2022-10-28", "eop": "2024-10-28"},
                    "2.0": {"ga": "2023-03-15", "eop": "2024-03-15"},
                },
            },
            "TensorFlow": {
                "latest_only": False,
                "lines": {
                    "1.15": {"ga": "2019-10-16", "upstream_eol": "2021-01-01"},
                    "2.0": {"ga": "2019-09-30"},
                },
            },
            "vLLM": {"latest_only": True, "lines": {}},
        },
        "families": {
            "pytorch-training": {
                "repository": "pytorch-training",
                "framework": "PyTorch",
                "registry": "dlc",
                "group": "pytorch",
                "default_platform": "sagemaker",
                "lines": {
                    "2.7": {"ga": "2025-04-23", "eop": "2026-04-23"},
                    "2.9": {"ga": "2025-10-15", "eop": "2026-10-15"},
                    "2.10": {"ga": "2026-01-21", "eop": "2027-01-21"},
                    "2.11": {"ga": "2026-04-30"},
                },
                "images": [
                    img("2.7.1", ["2.7.1-gpu-py312-cu128-ubuntu22.04-ec2", "2.7-gpu-py312-ec2"]),
                    img("2.9.0", ["2.9.0-gpu-py312-cu130-ubuntu22.04-ec2", "2.9-gpu-py312-ec2"]),
                    img("2.10.1", ["2.10.1-gpu-py312-cu130-ubuntu22.04-ec2", "2.10-gpu-py312-ec2"]),
                    img("2.10.1", ["2.10.1-gpu-py310-cu130-ubuntu22.04-ec2"], python="3.10"),
                    img("2.11.0", ["2.11.0-gpu-py312-cu130-ubuntu20.04-ec2"], os="ubuntu20.04"),
                    img("2.10.1", ["2.10.1-cpu-py312-ubuntu22.04-sagemaker"], accelerator="cpu", platform="sagemaker"),
                ],
            },
            "tensorflow-training": {
                "repository": "tensorflow-training",
                "framework": "TensorFlow",
                "registry": "dlc",
                "group": "tensorflow",
                "images": [
                    img("1.15.5", ["1.15.5-gpu-py312-ubuntu22.04-ec2"]),
                    img("2.0.0", ["2.0.0-gpu-py312-ubuntu22.04-ec2"]),
                ],
            },
            "vllm": {
                "repository": "vllm",
                "framework": "vLLM",
                "registry": "dlc",
                "images": [img("0.20.0", ["0.20.0-gpu-py312-ec2"]), img("0.21.0", ["0.21.0-gpu-py312-ec2"])],
            },
            "vllm-server": {
                "repository": "vllm",
                "framework": "vLLM",
                "registry": "dlc",
                "images": [
                    img("0.20.0+a", ["server-cuda-v1.0"], build="1.0", flavor="server", os="amzn2023"),
                    img("0.21.0+b", ["server-cuda-v1.2"], build="1.2", flavor="server", os="amzn2023"),
                ],
            },
            "djl-inference": {
                "repository": "djl-inference",
                "framework": "DJLServing",
                "registry": "dlc",
                "images": [
                    img("0.36.0", ["0.36.0-lmi18.0.0-cu128"], extras={"lmi": "18.0.0"}, python=None, os=None),
                    img("0.36.0", ["0.36.0-lmi20.0.0-cu128"], extras={"lmi": "20.0.0"}, python=None, os=None),
                ],
            },
            "sagemaker-xgboost": {
                "repository": "sagemaker-xgboost",
                "framework": "XGBoost",
                "registry": "algorithms",
                "lines": {"3.2": {"ga": "2026-05-13", "eop": "2027-05-13"}},
                "images": [img("3.2-0", ["3.2-0"], accelerator="cpu", platform="sagemaker", python=None, os=None)],
            },
        },
        "advisories": [
            {
                "id": "ubuntu-vllm",
                "code": "CANNOT_FULLY_PATCH",
                "message": "Ubuntu vLLM cannot be fully patched.",
                "match": {"frameworks": ["vLLM"], "os_prefix": "ubuntu"},
            },
            {
                "id": "xgb-old",
                "code": "VARIANT_UNSUPPORTED",
                "verdict": "unsupported",
                "message": "gone",
                "match": {"families": ["sagemaker-xgboost"], "tags": ["3.2-1"]},
                "recommend_tag": "3.2-0",
            },
        ],
    }
