"""The classic guestbook's images (``examples/guestbook.kf``, kubernetes/examples'
guestbook), built into the bundle under exactly the names the example uses, so it runs on a
cluster with no registry:

- ``registry.k8s.io/redis:e2e``, the redis master: Debian's ``redis-server`` with the
  configuration of Kubernetes' test/images/redis (``/etc/redis.conf``);
- ``gcr.io/google_samples/gb-redisslave:v3``, a replica: the same base and upstream's
  ``/run.sh``, which replicates from the ``redis-master`` Service;
- ``gcr.io/google-samples/gb-frontend:v4``, the frontend: upstream's PHP page (``GET /``,
  ``/guestbook.php?cmd=set|get``) as a static Go program (``bundle/apps/guestbook``) on :80;
- ``gcr.io/google-samples/gb-frontend:v5``, the same program with ``GUESTBOOK_RELEASE=v5``
  (v4's says ``v4``), so a rolling update and its rollback can be run offline and seen in
  each answer's ``X-Guestbook-Release`` header.

The redis images share one Debian root file system (the essential set plus
``redis-server``, built like the Debian base) and run as its ``redis`` user; the frontend
runs as root on the static base, as it binds port 80.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kubeforge.bundle.archive import DEFAULT_PATH, ImageConfig
from kubeforge.bundle.images import ImageSpec
from kubeforge.bundle.layout import KUBELET_ROLES
from kubeforge.bundle.rootfs import CLEANUP, RootfsRecipe

REDIS_MASTER_IMAGE = "registry.k8s.io/redis:e2e"
REDIS_REPLICA_IMAGE = "gcr.io/google_samples/gb-redisslave:v3"
FRONTEND_REPOSITORY = "gcr.io/google-samples/gb-frontend"
FRONTEND_RELEASES = ("v4", "v5")  # v4 is the example's; v5 is what it rolls out to
#: Image -> what it is, for ``bundle check`` and the docs.
IMAGES = {REDIS_MASTER_IMAGE: "the guestbook's redis master",
          REDIS_REPLICA_IMAGE: "the guestbook's redis replica",
          **{f"{FRONTEND_REPOSITORY}:{tag}": f"the guestbook's frontend ({tag})"
             for tag in FRONTEND_RELEASES}}

REDIS_BASE = RootfsRecipe("redis-base", ("redis-server",), 'set -eu\nroot="$1"\n' + CLEANUP)
REDIS_USER = "redis"  # created by the redis-server package
REDIS_DIR = "/var/lib/redis"  # the package's data directory, owned by that user
FRONTEND = "guestbook-frontend"  # the Go program's binary

#: Source name -> file shipped with kubeforge (``bundle/apps/redis``).
DATA_FILES = {"redis.conf": "redis.conf", "redis-replica-run.sh": "run.sh"}


def data_sources() -> dict[str, Path]:
    """The image files that are not built: the redis configuration and the replica's
    run.sh, as ImageBuilder sources."""
    folder = resources.files("kubeforge.bundle").joinpath("apps", "redis")
    return {source: Path(str(folder / name)) for source, name in DATA_FILES.items()}


def guestbook_image_specs(redis_ids: str) -> list[ImageSpec]:
    """The images of :data:`IMAGES`; ``redis_ids`` is ``uid:gid`` of the redis user in the
    redis base."""
    conf = ("/etc/redis.conf", "redis.conf", 0o644)
    redis = dict(user=redis_ids, workdir=REDIS_DIR, ports=("6379/tcp",))
    return [
        ImageSpec(REDIS_MASTER_IMAGE, "redis", KUBELET_ROLES, REDIS_BASE.name, (conf,),
                  ImageConfig(cmd=("redis-server", "/etc/redis.conf"), **redis)),
        ImageSpec(REDIS_REPLICA_IMAGE, "redis", KUBELET_ROLES, REDIS_BASE.name,
                  (conf, ("/run.sh", "redis-replica-run.sh", 0o755)),
                  ImageConfig(cmd=("/run.sh",), **redis)),
    ] + [
        ImageSpec(f"{FRONTEND_REPOSITORY}:{tag}", "guestbook", KUBELET_ROLES, "static",
                  ((f"/{FRONTEND}", FRONTEND, 0o755),),
                  ImageConfig(entrypoint=(f"/{FRONTEND}",), ports=("80/tcp",),
                              env=(DEFAULT_PATH, f"GUESTBOOK_RELEASE={tag}")),
                  stem="gb-frontend" if tag == FRONTEND_RELEASES[0] else f"gb-frontend-{tag}")
        for tag in FRONTEND_RELEASES]
