from tests.k8s.bundle_fixture import bundle  # noqa: F401  (the session fixture)
