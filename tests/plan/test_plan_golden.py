"""Goldens of plan.txt: synthetic clusters, and the real build of examples/ha-cluster.kf.

plan.txt shows paths, modes and owners but no hashes (they live in plan.json), so a new CA or
bootstrap token per state directory leaves it byte-identical and no normalising is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.emit import plan as plan_emitter
from kubeforge.compiler.plan import Plan, render_text
from kubeforge.compiler.state import StateDir
from plan_helpers import NOW, assert_golden, context, make_cluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ha-cluster.kf"


@pytest.mark.parametrize("etcd, deploy_as", [("stacked", "services"),
                                             ("external", "services"),
                                             ("stacked", "static-pods")])
def test_synthetic_plan_txt(etcd, deploy_as):
    ctx, _ = context(make_cluster(etcd=etcd, deploy_as=deploy_as))
    plan = plan_emitter.build_plan(ctx.cluster, ctx.artifacts, ctx.shared)
    assert_golden(f"synthetic-{etcd}-{deploy_as}.plan.txt", render_text(plan))


@pytest.fixture(scope="session")
def example_state(tmp_path_factory) -> Path:
    """One state directory for the session: the CA and token are made once, then reused."""
    return tmp_path_factory.mktemp("plan-state")


@pytest.fixture
def example_build(example_state, tmp_path):
    result = compile_file(EXAMPLE, tmp_path / "build", state_dir=example_state, now=NOW)
    return result.root


def test_example_plan_txt(example_build):
    assert_golden("ha-cluster.plan.txt", (example_build / "plan.txt").read_text())


def test_example_plan_json_loads_and_holds_no_secret(example_build, example_state):
    text = (example_build / "plan.json").read_text()
    plan = Plan.from_json(text)
    assert plan.to_json() == text
    root = example_build
    uploaded = {s.action.source for s in plan.uploads()}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("nodes/") and path.is_file():
            assert rel in uploaded, f"{rel} is never uploaded"
    token = StateDir(example_state).bootstrap_token()
    for name in ("plan.json", "plan.txt"):
        content = (root / name).read_text()
        assert token not in content and "PRIVATE KEY" not in content
        for key in root.rglob("*.key"):
            for line in key.read_text().splitlines()[1:-1]:
                assert line not in content, f"{key} leaks into {name}"
