"""The guestbook example's images: named exactly as the compiled example's Deployments name
them, and built by the image builder on stand-in inputs (no Go, no mmdebstrap)."""

from __future__ import annotations

import io
import tarfile

import pytest
import yaml

from kubeforge.bundle import guestbook
from kubeforge.bundle.cache import Cache
from kubeforge.bundle.check import APP_IMAGES
from kubeforge.bundle.digest import sha256_file
from kubeforge.bundle.errors import BundleError
from kubeforge.bundle.guestbook import REDIS_BASE, data_sources, guestbook_image_specs
from kubeforge.bundle.images import ImageBuilder
from kubeforge.bundle.rootfs import user_ids
from kubeforge.compiler.emit.manifests import manifest_artifacts
from kubeforge.compiler.lower import load_program
from tests.bundle.bundle_helpers import EPOCH, open_image
from tests.conftest import EXAMPLES

FRONTEND_V5 = "gcr.io/google-samples/gb-frontend:v5"
PASSWD = (b"root:x:0:0:root:/root:/bin/bash\n"
          b"redis:x:100:101::/var/lib/redis:/usr/sbin/nologin\n")


def example_containers() -> dict[str, dict]:
    """Deployment name -> its container, from the compiled examples/guestbook.kf."""
    program, _ = load_program(EXAMPLES / "guestbook.kf")
    found = {}
    for artifact in manifest_artifacts(program):
        for doc in yaml.safe_load_all(artifact.content.decode()):
            if doc and doc["kind"] == "Deployment":
                (container,) = doc["spec"]["template"]["spec"]["containers"]
                found[doc["metadata"]["name"]] = container
    return found


def test_images_are_named_as_the_compiled_example_names_them():
    containers = example_containers()
    specs = {spec.name: spec for spec in guestbook_image_specs("100:101")}
    assert set(guestbook.IMAGES) == set(specs)
    assert {c["image"] for c in containers.values()} == set(specs) - {FRONTEND_V5}
    assert set(guestbook.IMAGES) <= set(APP_IMAGES)  # `bundle check` requires each of them
    for container in containers.values():
        spec = specs[container["image"]]
        assert spec.roles == ("control-plane", "worker")
        ports = {f"{p['containerPort']}/tcp" for p in container["ports"]}
        assert set(spec.config.ports) == ports  # the port the example's Service targets
    master = specs[containers["redis-master"]["image"]]
    assert master.config.cmd == ("redis-server", "/etc/redis.conf")
    replica = specs[containers["redis-slave"]["image"]]
    assert replica.config.cmd == ("/run.sh",) and replica.base == master.base == REDIS_BASE.name
    frontend = specs[containers["frontend"]["image"]]
    assert frontend.config.entrypoint == ("/guestbook-frontend",) and frontend.base == "static"
    assert frontend.config.user == ""  # root: it binds port 80
    assert {s.short for s in specs.values()} == {"redis", "gb-redisslave", "gb-frontend",
                                                 "gb-frontend-v5"}  # one archive each
    v5 = specs[FRONTEND_V5]  # what the HA test rolls out to: the same program, another name
    assert v5.files == frontend.files and v5.config.entrypoint == frontend.config.entrypoint
    assert "GUESTBOOK_RELEASE=v5" in v5.config.env and "GUESTBOOK_RELEASE=v4" in frontend.config.env


def test_redis_user_is_read_from_the_root_file_system(tmp_path):
    rootfs = _rootfs(tmp_path / "redis.tar")
    assert user_ids(rootfs, "redis") == "100:101"
    with pytest.raises(BundleError, match="no user memcache in /etc/passwd"):
        user_ids(rootfs, "memcache")


def _rootfs(path):
    with tarfile.open(path, "w") as tar:
        for name, data, mode, uid in (("./etc/passwd", PASSWD, 0o644, 0),
                                      ("./usr/bin/redis-server", b"\x7fELF redis", 0o755, 0),
                                      ("./var/lib/redis/.keep", b"", 0o644, 100)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(data), mode, uid
            tar.addfile(info, io.BytesIO(data))
    return path


def _image(archive):
    """(config, {path: (mode, uid, content)} across the layers, layer diff ids)."""
    found = {}
    with open_image(archive) as (config, layers):
        for layer in layers:
            for m in layer.getmembers():
                found[m.name] = (m.mode, m.uid, layer.extractfile(m).read() if m.isreg() else None)
    return config, found, config["rootfs"]["diff_ids"]


def test_builder_writes_the_three_images(tmp_path):
    redis_root = _rootfs(tmp_path / "redis.tar")
    debian = tmp_path / "debian.tar"
    with tarfile.open(debian, "w") as tar:
        info = tarfile.TarInfo("./etc/ssl/certs/ca-certificates.crt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"CERTS\n"))
    frontend = tmp_path / "guestbook-frontend"
    frontend.write_bytes(b"\x7fELF frontend")
    sources = {"guestbook-frontend": frontend, **data_sources()}
    builder = ImageBuilder(Cache(tmp_path / "cache"), debian, sha256_file(debian), EPOCH,
                           lambda _line: None,
                           roots={REDIS_BASE.name: (redis_root, sha256_file(redis_root))})
    specs = {s.short: s for s in guestbook_image_specs(user_ids(redis_root, "redis"))}
    built = {short: builder.image(spec, sources)[0] for short, spec in specs.items()}

    config, files, master_layers = _image(built["redis"])
    assert config["config"]["User"] == "100:101"
    assert config["config"]["WorkingDir"] == "/var/lib/redis"
    assert config["config"]["Cmd"] == ["redis-server", "/etc/redis.conf"]
    assert files["usr/bin/redis-server"][2] == b"\x7fELF redis"
    conf = files["etc/redis.conf"][2].decode()
    assert "protected-mode no" in conf and "dir /var/lib/redis" in conf
    assert conf == data_sources()["redis.conf"].read_text()

    config, files, replica_layers = _image(built["gb-redisslave"])
    assert config["config"]["Cmd"] == ["/run.sh"] and config["config"]["User"] == "100:101"
    mode, uid, script = files["run.sh"]
    assert mode == 0o755 and uid == 0 and script.startswith(b"#!/bin/sh\n")
    assert b'exec redis-server /etc/redis.conf --replicaof "$master" "$port" "$@"' in script
    assert replica_layers[0] == master_layers[0]  # one Debian redis base on a node

    config, files, _ = _image(built["gb-frontend"])
    assert config["config"]["Entrypoint"] == ["/guestbook-frontend"]
    assert config["config"]["ExposedPorts"] == {"80/tcp": {}} and "User" not in config["config"]
    assert files["guestbook-frontend"] == (0o755, 0, b"\x7fELF frontend")
    assert "usr/bin/redis-server" not in files and files["etc/ssl/certs/ca-certificates.crt"]

    again = ImageBuilder(Cache(tmp_path / "cache2"), debian, sha256_file(debian), EPOCH,
                         lambda _line: None,
                         roots={REDIS_BASE.name: (redis_root, sha256_file(redis_root))})
    for short, spec in specs.items():
        assert again.image(spec, sources)[0].read_bytes() == built[short].read_bytes(), short

    no_redis = ImageBuilder(Cache(tmp_path / "cache3"), debian, sha256_file(debian), EPOCH,
                            lambda _line: None)
    with pytest.raises(BundleError, match="no image base redis-base"):
        no_redis.image(specs["redis"], sources)
