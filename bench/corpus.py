"""A reproducible mixed corpus of image references, shaped like a real cluster's."""

from __future__ import annotations

import random

from policy.catalog import Catalog


def mixed_corpus(catalog: Catalog, n: int, seed: int = 7) -> list[str]:
    """``n`` references: ~70% catalog tags across regions and registries, ~10% tags the
    catalog does not list (older patches, builds), ~12% non-DLC images, a few digests,
    `latest`, and invalid strings."""
    rng = random.Random(seed)
    dlc_hosts = [f"{acct}.dkr.ecr.{region}.amazonaws.com" for region, acct in sorted(catalog.dlc_accounts.items())]
    dlc_hosts = [h + ".cn" if ".cn-" in h else h for h in dlc_hosts]
    algo_hosts = [
        f"{acct}.dkr.ecr.{region}.amazonaws.com" for region, acct in sorted(catalog.algorithm_accounts.items())
    ]
    pairs = []
    for fam in catalog.families.values():
        for img in fam.images:
            for tag in img.tags:
                pairs.append((fam, tag))
    others = [
        "nginx:1.25",
        "docker.io/library/python:3.12-slim",
        "ghcr.io/org/app:v1.2.3",
        "quay.io/prometheus/node-exporter:v1.8.0",
        "nvcr.io/nvidia/pytorch:24.09-py3",
        "registry.k8s.io/pause:3.9",
        "busybox",
    ]
    invalid = ["Not A Ref", "foo/Bar:1", "a//b", "x:", "repo@sha256:abc"]
    out = []
    for _ in range(n):
        roll = rng.random()
        fam, tag = pairs[rng.randrange(len(pairs))]
        if fam.registry == "algorithms":
            host = rng.choice(algo_hosts)
        elif fam.public and rng.random() < 0.2:
            host = "public.ecr.aws/deep-learning-containers"
        else:
            host = rng.choice(dlc_hosts)
        if roll < 0.70:
            out.append(f"{host}/{fam.repository}:{tag}")
        elif roll < 0.80:
            parts = tag.split("-")
            bumped = "-".join([*parts[:-1], f"v1.{rng.randrange(12)}"]) if len(parts) > 1 else tag + "-v1.3"
            out.append(f"{host}/{fam.repository}:{bumped}")
        elif roll < 0.92:
            out.append(rng.choice(others))
        elif roll < 0.96:
            out.append(f"{host}/{fam.repository}@sha256:{rng.getrandbits(256):064x}")
        elif roll < 0.98:
            out.append(f"{host}/{fam.repository}:latest")
        else:
            out.append(rng.choice(invalid))
    return out
