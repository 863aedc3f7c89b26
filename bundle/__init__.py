"""Offline bundles: every binary and container image a kubeadm cluster needs, built from
source through the Go module proxy, with a manifest that pins each file by sha256.

The builder owns the Go toolchain and the image archives; the compiler stays pure and the
targets only move files (DESIGN section 7). What other packages use:

- :func:`kubeforge.bundle.manifest.load_manifest` and :class:`~kubeforge.bundle.manifest.Manifest`
  (files and images per role, where each file goes on a host),
- :func:`kubeforge.bundle.check.check_bundle` (refuses a corrupt or incomplete bundle),
- :func:`kubeforge.bundle.build.build_bundle` (what ``kubeforge bundle build`` runs).
"""

from kubeforge.bundle.check import check_bundle
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.manifest import Manifest, load_manifest

__all__ = ["BundleError", "Manifest", "check_bundle", "load_manifest"]
