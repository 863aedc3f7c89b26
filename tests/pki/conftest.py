import pytest
from pki_helpers import Built, build, make_cluster


@pytest.fixture
def built(tmp_path) -> Built:
    """A stacked-etcd 1.31 cluster (3 control planes, 1 worker) built once into tmp_path."""
    return build(make_cluster(), tmp_path)
