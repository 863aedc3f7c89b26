"""The compiler runs with the garbage collector off (gc_batch), which is free only while it
makes no reference cycles: those only the collector frees, so each would stay in memory."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import pytest

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.gc_batch import fewer_collections

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["ha-cluster.kf", "policies.kf", "postgres-ha.kf"])
def test_compiling_leaves_no_cyclic_garbage(tmp_path, name):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    source = tmp_path / "examples" / name
    # The first compile imports modules and fills caches (cycles that live on, not garbage).
    compile_file(source, tmp_path / "out", state_dir=tmp_path / "state")
    gc.collect()
    gc.disable()
    try:
        compile_file(source, tmp_path / "out", state_dir=tmp_path / "state")
        assert not gc.isenabled()  # the batch gives back the state it found
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


def test_the_batch_turns_the_collector_off_and_back_on():
    assert gc.isenabled()
    with fewer_collections():
        assert not gc.isenabled()
    assert gc.isenabled()
