from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from policy.catalog import Catalog, default_catalog

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "dlc-data" / "upstream"
AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="session")
def upstream() -> Path:
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream data not found at {UPSTREAM}")
    return UPSTREAM
