"""The session `sandbox` fixture other end-to-end tests build on."""

from __future__ import annotations

import pytest
from kubeforge.targets.sandbox_docker import sshd_answers

from tests import sandbox_fixtures


@pytest.mark.e2e
def test_session_sandbox_has_six_answering_hosts(sandbox):
    hosts = sandbox.hosts()
    assert len(hosts) >= 6
    assert [h.name for h in hosts[:6]] == [f"node{i}" for i in range(1, 7)]
    assert all(sshd_answers(h.address, h.port) for h in hosts)
    assert sandbox.inventory.exists() and sandbox.known_hosts.exists()


def test_the_fixture_refuses_tests_not_marked_e2e():
    class Item:
        nodeid, fixturenames = "t.py::test_unmarked", ("sandbox",)

        def get_closest_marker(self, name):
            return None

    with pytest.raises(pytest.fail.Exception, match="not marked e2e"):
        sandbox_fixtures.pytest_runtest_setup(Item())
