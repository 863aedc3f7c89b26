"""Every end-to-end test here brings up a real Kubernetes cluster on sandbox hosts: marked
``cluster``, the tests .ci/run runs one at a time (this 2-core machine holds one cluster)."""

from pathlib import Path

import pytest

from tests.k8s.bundle_fixture import bundle, previous_bundle  # noqa: F401  (session fixtures)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if item.get_closest_marker("e2e") and HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.cluster)
