"""Shared fixtures for the CRD / example schema tests (helpers live in crdschema.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crdschema  # noqa: E402


@pytest.fixture(scope="session")
def crds():
    return crdschema.load_crds()


@pytest.fixture(scope="session")
def openssl():
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed")
    return path
