"""The bundle builder's and checker's errors (under kubeforge's one error root)."""

from __future__ import annotations

from kubeforge.errors import KubeforgeError


class BundleError(KubeforgeError):
    """A bundle could not be built, or a bundle directory is not a complete, intact bundle."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems
