"""keep-originals and reset's restore, run here with sh on a scratch tree (the store and the
paths under tmp_path): what reset gives back, what it removes, and what it leaves alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubeforge.compiler.emit.originals import keep_step, restore_script


def _sh(script: str) -> None:
    subprocess.run(["sh", "-c", script], check=True, capture_output=True, timeout=30)


def _tree(root: Path) -> dict[str, str | None]:
    return {str(p.relative_to(root)): (p.read_text() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_reset_gives_back_files_and_removes_only_what_apply_added(tmp_path):
    host, store = tmp_path / "host", tmp_path / "store"
    (host / "etc/haproxy").mkdir(parents=True)
    (host / "etc/haproxy/haproxy.cfg").write_text("the package's\n")
    (host / "etc/crictl.yaml").write_text("the host's own\n")
    (host / "etc/kept-empty").mkdir()
    before = _tree(host)
    paths = [str(host / p) for p in (
        "etc/haproxy/haproxy.cfg", "etc/crictl.yaml", "etc/kubernetes/pki/ca.crt",
        "etc/kubernetes/kubeadm/join.yaml", "etc/kept-empty/new.conf")]
    keep, kept = keep_step(paths, str(store))
    assert subprocess.run(["sh", "-c", kept.value], capture_output=True).returncode == 1
    _sh(keep.shell)
    assert subprocess.run(["sh", "-c", kept.value], capture_output=True).returncode == 0

    # apply: every path uploaded; kubeadm adds a file of its own under a new directory
    for p in paths:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        Path(p).write_text("kubeforge's\n")
    (host / "etc/kubernetes/manifests").mkdir()
    (host / "etc/kubernetes/manifests/etcd.yaml").write_text("kubeadm's\n")
    _sh(keep.shell)  # a later apply keeps the first record
    (host / "etc/kubernetes/manifests/etcd.yaml").unlink()  # kubeadm reset

    _sh(restore_script(paths, str(store)))
    assert _tree(host) == before  # kubeadm's empty manifests/ went with etc/kubernetes
    assert not store.exists()
    _sh(restore_script(paths, str(store)))  # once more: nothing left to do, nothing breaks
    assert _tree(host) == before


def test_a_directory_that_was_not_there_stays_while_a_file_is_in_it(tmp_path):
    host, store = tmp_path / "host", tmp_path / "store"
    host.mkdir()
    paths = [str(host / "etc/kubernetes/pki/ca.crt")]
    keep, _ = keep_step(paths, str(store))
    _sh(keep.shell)
    Path(paths[0]).parent.mkdir(parents=True)
    Path(paths[0]).write_text("kubeforge's\n")
    (host / "etc/kubernetes/admin.conf").write_text("someone else's\n")
    (host / "etc/kubernetes/pki/etcd").mkdir()
    _sh(restore_script(paths, str(store)))
    assert _tree(host) == {"etc": None, "etc/kubernetes": None,
                           "etc/kubernetes/admin.conf": "someone else's\n"}


def test_without_a_record_nothing_is_touched_and_the_script_goes_on(tmp_path):
    # A reset run again after it finished: the record is gone, the files are the host's.
    (tmp_path / "crictl.yaml").write_text("the host's own\n")
    script = restore_script([str(tmp_path / "crictl.yaml")], str(tmp_path / "store"))
    out = subprocess.run(["sh", "-c", script + "\necho went on"], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout == "went on\n"
    assert (tmp_path / "crictl.yaml").read_text() == "the host's own\n"


def test_the_e2e_modules_cleanup_gives_a_package_file_back(tmp_path):
    # tests/support/clean_hosts.py, which the e2e modules sharing the sandbox hosts run
    # between them: a recorded original comes back, an unrecorded unowned path goes.
    from tests.support.clean_hosts import cold

    host, store = tmp_path / "host", tmp_path / "store"
    (host / "etc/haproxy").mkdir(parents=True)
    (host / "etc/haproxy/haproxy.cfg").write_text("the package's\n")
    paths = [str(host / "etc/haproxy/haproxy.cfg"), str(host / "etc/kubernetes/pki/ca.crt")]
    keep, _ = keep_step(paths, str(store))
    _sh(keep.shell)
    for p in paths:
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        Path(p).write_text("kubeforge's\n")
    script = cold((paths[0], str(host / "etc/kubernetes")), (), str(store))
    _sh(script)
    assert _tree(host) == {"etc": None, "etc/haproxy": None,
                           "etc/haproxy/haproxy.cfg": "the package's\n"}
    assert not store.exists()
