import pytest

from tests.bundle.app_helpers import build_programs


@pytest.fixture(scope="session")
def programs(tmp_path_factory):
    """The bundle's own programs (echo, guestbook-frontend), name -> binary."""
    return build_programs(tmp_path_factory.mktemp("bundle-cache"))
