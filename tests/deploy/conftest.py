from __future__ import annotations

import pytest

from kubeforge.targets.base import HostSpec
from kubeforge.targets.deploy import Deployment
from tests.deploy.fakes import FakeHost, small_plan


@pytest.fixture
def setup(tmp_path):
    """The small plan of two fake hosts, as a deployment with its own state directory."""
    build = tmp_path / "build"
    plan = small_plan(build)
    dep = Deployment(plan, build, tmp_path / "state",
                     {h.name: HostSpec(h.name, h.address) for h in plan.hosts})
    hosts = {"a": FakeHost(programs={"kubeadm"}), "b": FakeHost(programs={"kubeadm"})}
    return dep, hosts
