"""End to end: build the real bundle of Kubernetes 1.37.2 from the Go module proxy (cached in
the machine's bundle cache after the first run), check it, and ask every binary in it what it
is: version stamps, static linking, kubeadm's own image list, and the bundle's containerd
importing the bundle's image archives and running one of them with the bundle's runc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kubeforge.bundle import recipes
from kubeforge.bundle.addons import addon_image_specs
from kubeforge.bundle.check import APP_IMAGES, check_bundle
from kubeforge.bundle.guestbook import REDIS_MASTER_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VERSION = "1.37.2"
KF = [sys.executable, "-m", "kubeforge"]


def _kf(*args: str, timeout: float = 4 * 3600) -> subprocess.CompletedProcess:
    return subprocess.run([*KF, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    for tool in ("go", "gcc", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed: bundles are built with Go, gcc and mmdebstrap")
    out = tmp_path_factory.mktemp("bundle") / f"k8s-{VERSION}"
    build = _kf("bundle", "build", "--kubernetes", VERSION, "-o", str(out), "--json")
    assert build.returncode == 0, build.stderr[-4000:]
    report = json.loads(build.stdout)
    assert report["ok"] and report["kubernetes"] == f"v{VERSION}"
    assert "bundle: kubeadm v1.37.2" in build.stderr  # progress lines, without a terminal
    return out


def _run(*cmd: str, env: dict | None = None, stdout_only: bool = False) -> str:
    """What a command printed (some print their version on stderr)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout if stdout_only else proc.stdout + proc.stderr


def test_check_passes_and_second_build_is_a_no_op(bundle):
    check = _kf("bundle", "check", str(bundle), "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["ok"]
    started = time.monotonic()
    again = _kf("bundle", "build", "--kubernetes", VERSION, "-o", str(bundle), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    report = json.loads(again.stdout)
    assert report["up_to_date"] and report["built"] == [] and report["changed"] == []
    assert time.monotonic() - started < 300  # a no-op, not a rebuild (generous on 2 cores)


def test_kubeadm_is_the_release_and_names_exactly_the_bundled_images(bundle):
    kubeadm = str(bundle / "bin/kubeadm")
    assert _run(kubeadm, "version", "-o", "short").strip() == f"v{VERSION}"
    listed = _run(kubeadm, "config", "images", "list", "--kubernetes-version", f"v{VERSION}")
    names = [line for line in listed.splitlines() if line.strip()]
    manifest = check_bundle(bundle)
    assert tuple(names) == manifest.kubeadm_images
    bundled = {image.name for image in manifest.images}
    assert set(names) <= bundled
    addons = {spec.name for spec in addon_image_specs()}
    assert bundled - set(names) == {"ghcr.io/flannel-io/flannel:v0.28.10", *APP_IMAGES, *addons}


def _image_file(archive: Path, wanted: str) -> bytes:
    """A file of an image archive, read through its OCI index, manifest and layers."""
    with tarfile.open(archive) as outer:
        def blob(digest: str):
            return outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        for layer in reversed(manifest["layers"]):
            with tarfile.open(fileobj=blob(layer["digest"])) as inner:
                try:
                    return inner.extractfile(wanted.lstrip("/")).read()
                except KeyError:
                    continue
    raise AssertionError(f"{archive} has no {wanted}")


def _static(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) needs no libc on the host."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2  # 64-bit
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types


def test_every_binary_is_static_and_stamped_like_a_release(bundle, tmp_path):
    b = bundle / "bin"
    for path in [*b.iterdir(), *(bundle / "cni/bin").iterdir()]:
        assert _static(path), f"{path.name} is dynamically linked"
    release = f"v{VERSION}"
    assert _run(str(b / "kubelet"), "--version").strip() == f"Kubernetes {release}"
    client = json.loads(_run(str(b / "kubectl"), "version", "--client", "-o", "json"))
    assert client["clientVersion"]["gitVersion"] == release
    assert client["clientVersion"]["gitTreeState"] == "clean"
    assert client["clientVersion"]["buildDate"] == "2026-10-27T12:01:04Z"
    assert "etcd Version: 3.7.0" in _run(str(b / "etcd"), "--version")
    assert "etcdctl version: 3.7.0" in _run(str(b / "etcdctl"), "version")
    assert "etcdutl version: 3.7.0" in _run(str(b / "etcdutl"), "version")
    assert _run(str(b / "crictl"), "--version").strip() == "crictl version 1.37.0"
    assert _run(str(b / "containerd"), "--version").startswith(
        "containerd github.com/containerd/containerd/v2 v2.4.2")
    assert "v2.4.2" in _run(str(b / "ctr"), "--version")
    assert "Version:  v2.4.2" in _run(str(b / "containerd-shim-runc-v2"), "-v")
    assert _run(str(b / "runc"), "--version").startswith("runc version 1.5.2")
    no_cni = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        assert f"CNI {plugin} plugin v1.10.0" in _run(str(bundle / "cni/bin" / plugin), env=no_cni)
    assert "CNI flannel plugin v0.9.1" in _run(str(bundle / "cni/bin/flannel"), env=no_cni)

    images = bundle / "images"
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        binary = tmp_path / name
        binary.write_bytes(_image_file(images / f"{name}.tar", f"/usr/local/bin/{name}"))
        binary.chmod(0o755)
        assert _static(binary)
        assert _run(str(binary), "--version").strip() == f"Kubernetes {release}"
    for archive, path, flag, expected in (
            ("coredns.tar", "/coredns", "-version", "CoreDNS-1.14.6"),
            ("pause.tar", "/pause", "-v", "pause.c v3.10.2-v1.37.2"),
            ("flannel.tar", "/opt/bin/flanneld", "--version", "v0.28.10"),
            ("echo.tar", "/echo", "-version", f"echo {recipes.ECHO_VERSION}"),
            ("gb-frontend.tar", "/guestbook-frontend", "-version",
             f"guestbook-frontend {recipes.GUESTBOOK_VERSION}")):
        binary = tmp_path / Path(path).name
        binary.write_bytes(_image_file(images / archive, path))
        binary.chmod(0o755)
        assert _static(binary)
        assert expected in _run(str(binary), flag)
    # kube-proxy and flannel need packet-filter userland in their image.
    for tool in ("/usr/sbin/iptables-nft", "/usr/sbin/nft", "/usr/sbin/conntrack"):
        assert _image_file(images / "kube-proxy.tar", tool)[:4] == b"\x7fELF"


CONTAINERD_CONFIG = """\
version = 3
root = "{dir}/root"
state = "{dir}/state"
# No CRI and no NRI: this containerd must not touch the machine's CNI or NRI socket.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images",
                    "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri",
                    "io.containerd.podsandbox.controller.v1.podsandbox"]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

# The native snapshotter (plain copies) works on any file system, overlay roots included.
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/amd64"
  snapshotter = "native"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root")
def test_bundled_containerd_imports_every_image_and_runs_one(bundle, tmp_path):
    """The bundle's own containerd (its own root, state and socket; no CRI) imports each
    archive as `ctr -n k8s.io images import` does on a node, and runs the echo image with
    the bundle's shim and runc."""
    work = Path(f"/tmp/kf-ctr-{os.getpid()}")  # a short path: unix sockets have a length limit
    work.mkdir()
    (work / "config.toml").write_text(CONTAINERD_CONFIG.format(dir=work))
    env = {**os.environ, "PATH": f"{bundle / 'bin'}:{os.environ['PATH']}"}
    log = open(tmp_path / "containerd.log", "wb")
    daemon = subprocess.Popen([str(bundle / "bin/containerd"), "--config", str(work / "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    ctr = [str(bundle / "bin/ctr"), "--address", str(work / "containerd.sock"), "-n", "k8s.io"]
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*ctr, "version"], capture_output=True, env=env).returncode != 0:
            assert daemon.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "containerd.log").read_text()[-3000:]
            time.sleep(0.5)
        manifest = check_bundle(bundle)
        for image in manifest.images:
            _run(*ctr, "images", "import", "--snapshotter", "native",
                 str(bundle / image.archive), env=env)
        listed = _run(*ctr, "images", "list", "-q", env=env, stdout_only=True).split()
        assert {image.name for image in manifest.images} <= set(listed)
        echo = f"kubeforge.local/echo:{recipes.ECHO_VERSION}"
        out = _run(*ctr, "run", "--rm", "--snapshotter", "native", echo,
                   f"kf-echo-{os.getpid()}", "/echo", "-version", env=env, stdout_only=True)
        assert out.strip() == f"echo {recipes.ECHO_VERSION}"
        # Debian's redis-server, with its libraries, in the redis images' own base.
        out = _run(*ctr, "run", "--rm", "--snapshotter", "native", REDIS_MASTER_IMAGE,
                   f"kf-redis-{os.getpid()}", "redis-server", "--version", env=env,
                   stdout_only=True)
        assert out.startswith("Redis server v=7.")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(work / "state")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
