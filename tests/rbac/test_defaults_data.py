"""The RBAC data files read the same through libyaml (what `check` uses, for speed) as
through PyYAML's pure-Python safe loader."""

from __future__ import annotations

import pytest
import yaml

from kubeforge.compiler import rbac_defaults


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("name", ["rbac-bootstrap.yaml", "rbac-system-roles.yaml"])
def test_libyaml_reads_the_data_as_the_pure_python_loader_does(name):
    text = rbac_defaults._data(name)
    assert rbac_defaults._Loader is yaml.CSafeLoader
    assert list(yaml.load_all(text, Loader=yaml.CSafeLoader)) == list(yaml.safe_load_all(text))
