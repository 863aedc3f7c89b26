"""End to end: the guestbook's redis images as the bundle builds them (Debian's redis-server
bootstrapped with mmdebstrap, the image archives written by the image builder), unpacked and
run the way their image configs say (command, user, working directory, environment), in a
chroot, with the frontend program answering over HTTP: a message set through the frontend
reaches the master image's redis and comes back through the replica image's /run.sh."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kubeforge.bundle.build import _build_guestbook, _Run
from kubeforge.bundle.cache import Cache
from kubeforge.bundle.guestbook import (REDIS_BASE, REDIS_MASTER_IMAGE, REDIS_REPLICA_IMAGE,
                                        REDIS_USER, data_sources, guestbook_image_specs)
from kubeforge.bundle.images import ImageBuilder
from kubeforge.bundle.rootfs import installed_packages, user_ids
from tests.bundle.app_helpers import free_port, frontend, get, process
from tests.bundle.bundle_helpers import EPOCH, open_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """What `bundle build` builds for the guestbook, from a fresh cache: image name ->
    archive for the two redis images, and the frontend binary its image holds."""
    for tool in ("go", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed: the guestbook's parts are built with it")
    run = _Run(Cache(tmp_path_factory.mktemp("cache")), lambda _line: None)
    root, sha256 = _build_guestbook(run)
    packages = run.components["redis"]["packages"]
    assert packages == installed_packages(root)
    assert run.components["redis"]["version"] == packages["redis-server"]
    # The redis images use only their own base; the Debian base (the static images' CA
    # certificates) is not needed here.
    builder = ImageBuilder(run.cache, root, sha256, EPOCH, lambda _line: None,
                           roots={REDIS_BASE.name: (root, sha256)})
    images = {spec.name: builder.image(spec, data_sources())[0]
              for spec in guestbook_image_specs(user_ids(root, REDIS_USER))
              if spec.base == REDIS_BASE.name}
    return {**images, "guestbook-frontend": run.binaries["guestbook-frontend"].path}


def _unpack(archive: Path, into: Path) -> dict:
    """Unpack the image's layers in order into ``into``; returns its config document."""
    with open_image(archive) as (config, layers):
        for layer in layers:
            layer.extractall(into, numeric_owner=True, filter="fully_trusted")
    return config["config"]


def _container(image: Path, root: Path, args: list[str], env: dict[str, str], port: int,
               log: Path):
    """A minimal runtime: the image's command (``args`` replace its Cmd, as a pod's args do),
    user, working directory and environment, in a chroot of its unpacked layers."""
    config = _unpack(image, root)
    uid, gid = (int(part) for part in config["User"].split(":"))
    environ = dict(item.split("=", 1) for item in config["Env"]) | env

    def enter() -> None:
        os.chroot(root)
        os.chdir(config.get("WorkingDir") or "/")
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    argv = config.get("Entrypoint", []) + (args or config["Cmd"])
    return config, process(argv, port, log, environ, preexec_fn=enter)


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def test_frontend_master_and_replica_images_work_together(built, tmp_path):
    master_port, replica_port = free_port(), free_port()
    master_config, master = _container(
        built[REDIS_MASTER_IMAGE], tmp_path / "master",
        ["redis-server", "/etc/redis.conf", "--port", str(master_port), "--bind", "127.0.0.1"],
        {}, master_port, tmp_path / "master.log")
    # The replica's own /run.sh, told where the master is as Kubernetes' variables tell it.
    replica_config, replica = _container(
        built[REDIS_REPLICA_IMAGE], tmp_path / "replica",
        ["/run.sh", "--port", str(replica_port), "--bind", "127.0.0.1"],
        {"GET_HOSTS_FROM": "env", "REDIS_MASTER_SERVICE_HOST": "127.0.0.1",
         "REDIS_MASTER_SERVICE_PORT": str(master_port)}, replica_port, tmp_path / "replica.log")
    with master as master_proc, replica as replica_proc, frontend(
            built["guestbook-frontend"], tmp_path, master_port, replica_port) as url:
        redis_uid = int(master_config["User"].split(":")[0])
        assert redis_uid != 0 and _uid(master_proc.pid) == _uid(replica_proc.pid) == redis_uid
        assert get(f"{url}/guestbook.php?cmd=set&key=messages&value=one,two")[2] == \
            b'{"message": "Updated"}'
        deadline = time.monotonic() + 120  # the replica's first full sync takes a few seconds
        while (answer := get(f"{url}/guestbook.php?cmd=get&key=messages"))[2] != \
                b'{"data": "one,two"}':
            assert time.monotonic() < deadline, (answer, (tmp_path / "replica.log").read_text())
            time.sleep(0.5)
    replica_log = (tmp_path / "replica.log").read_text()
    assert f"Connecting to MASTER 127.0.0.1:{master_port}" in replica_log
    assert "MASTER <-> REPLICA sync: Finished with success" in replica_log
    assert replica_config["Cmd"] == ["/run.sh"]
    # Each wrote its data where its configuration says, as the redis user.
    assert (tmp_path / "replica/var/lib/redis/dump.rdb").stat().st_uid == redis_uid
