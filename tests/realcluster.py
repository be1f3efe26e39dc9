"""The real control plane for the tests that only mean something there (RBAC, the cluster's own behaviour)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def real_control_plane(cluster_backend: str, request: pytest.FixtureRequest, skip_reason: str) -> Iterator[Any]:
    """The session's `kube_backend`, cleaned after the test; on kubesim the test is skipped with `skip_reason`."""
    if cluster_backend != "kube":
        pytest.skip(skip_reason)
    backend = request.getfixturevalue("kube_backend")
    try:
        yield backend
    finally:
        backend.clean()
