"""The one error root of kubeforge.

Every error the tool raises on purpose derives from :class:`KubeforgeError`; the CLI turns
them into messages and exit codes, and anything else is a bug.
"""

from __future__ import annotations


class KubeforgeError(Exception):
    """Root of every error kubeforge raises on purpose."""

    exit_code = 1


class UsageError(KubeforgeError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class StateError(KubeforgeError):
    """The state directory is unusable or would have to be silently changed."""
