from tests.k8s.bundle_fixture import bundle, previous_bundle  # noqa: F401  (session fixtures)
