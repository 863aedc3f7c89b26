"""Sandbox timings (not a test): image build, `up` of six hosts, idempotent `up`, `down`.

    python3 bench/sandbox.py            # root; starts dockerd itself when none answers

The image is built under a throwaway tag so the cached one is neither used nor replaced; the
hosts get their own name and subnet so a running sandbox is left alone.

Measured on the project's machine kind (Debian 12, 2 cores; Debian mirror only):
  apt-get install docker.io mmdebstrap   10 s (once per machine)
  dockerd start until `docker info`      0.5 s
  image build (mmdebstrap + import)      63-80 s, 370 MB (once per recipe, then cached)
  up, 6 hosts, cached image              6.0 s (until every sshd answers, keys read)
  up again, 6 hosts (reuse)              1.4 s
  down, 6 hosts                          1.4 s
  tests/sandbox (21 tests, image cached) 45 s
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from kubeforge.targets.sandbox import Sandbox
from kubeforge.targets.sandbox_image import build_image
from kubeforge.targets.sandbox_run import run


def timed(label: str, action):
    started = time.monotonic()
    result = action()
    print(f"{label:<40} {time.monotonic() - started:6.1f} s", flush=True)
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kubeforge-bench-") as tmp:
        box = Sandbox(Path(tmp) / "sandbox", name="kfbench", subnet="10.77.8.0/24")
        timed("up, 6 hosts (dockerd, cached image)", lambda: box.up(6))
        timed("up again, 6 hosts (reuse)", lambda: box.up(6))
        tag = "kubeforge-sandbox:bench-cold"  # while the daemon runs: `down` may stop it
        timed("image build (mmdebstrap + docker import)",
              lambda: build_image(tag, Path(tmp) / "image.log"))
        run(["docker", "image", "rm", tag], check=False, timeout=120)
        timed("down, 6 hosts", box.down)


if __name__ == "__main__":
    main()
