"""Deterministic layers and image archives, read back with tarfile and json."""

from __future__ import annotations

import io
import json
import os
import tarfile

from kubeforge.bundle.archive import (ImageConfig, Layer, data_entry, file_entry, read_image_names,
                                      tar_entries, write_image_archive, write_layer)

EPOCH = 1793102464


def _layer(tmp_path, name, entries):
    path = tmp_path / name
    diff_id, size = write_layer(entries, path, EPOCH)
    return path, diff_id, size


def test_layer_bytes_depend_only_on_content(tmp_path):
    binary = tmp_path / "kube-proxy"
    binary.write_bytes(b"\x7fELF fake")
    a = [data_entry("etc/passwd", b"root:x:0:0::/root:/sbin/nologin\n"),
         file_entry("usr/local/bin/kube-proxy", binary)]
    first = _layer(tmp_path, "a.tar", a)
    os.utime(binary, (1, 1))  # the source file's own times do not leak into the layer
    second = _layer(tmp_path, "b.tar", list(reversed(a)))
    assert first[1:] == second[1:]
    assert first[0].read_bytes() == second[0].read_bytes()
    with tarfile.open(first[0]) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and "usr/local/bin" in names  # parents are included
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(EPOCH, 0, 0, "", "")}
    assert next(m for m in members if m.name.endswith("kube-proxy")).mode == 0o755


def test_image_archive_names_the_image_for_ctr_and_docker(tmp_path):
    path, diff_id, size = _layer(tmp_path, "l.tar", [data_entry("pause", b"x", 0o755)])
    name = "registry.k8s.io/pause:3.10.2"
    config = ImageConfig(entrypoint=("/pause",), user="65535:65535", env=())
    digests = write_image_archive(tmp_path / "pause.tar", name, [Layer(path, diff_id, size, "pause")],
                                  config, "2026-10-27T12:01:04Z", EPOCH)
    again = write_image_archive(tmp_path / "again.tar", name, [Layer(path, diff_id, size, "pause")],
                                config, "2026-10-27T12:01:04Z", EPOCH)
    assert digests == again
    assert (tmp_path / "pause.tar").read_bytes() == (tmp_path / "again.tar").read_bytes()
    assert read_image_names(tmp_path / "pause.tar") == {name: digests.manifest}
    with tarfile.open(tmp_path / "pause.tar") as tar:
        read = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    index = json.loads(read["index.json"])
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": name,
                                                     "org.opencontainers.image.ref.name": "3.10.2"}
    manifest = json.loads(read[f"blobs/sha256/{digests.manifest[7:]}"])
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": f"sha256:{diff_id}", "size": size}]
    image_config = json.loads(read[f"blobs/sha256/{digests.config[7:]}"])
    assert image_config["rootfs"]["diff_ids"] == [f"sha256:{diff_id}"]
    assert image_config["config"] == {"Entrypoint": ["/pause"], "User": "65535:65535", "Env": []}
    assert image_config["architecture"] == "amd64" and image_config["os"] == "linux"
    docker = json.loads(read["manifest.json"])
    assert docker == [{"Config": f"blobs/sha256/{digests.config[7:]}", "RepoTags": [name],
                       "Layers": [f"blobs/sha256/{diff_id}"]}]
    assert read["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'


def test_rootfs_tar_is_normalised(tmp_path):
    src = tmp_path / "rootfs.tar"
    with tarfile.open(src, "w") as tar:
        def add(name, type_=tarfile.REGTYPE, data=b"", **attrs):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime = type_, len(data), 12345
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("./", tarfile.DIRTYPE, mode=0o755)
        add("./usr/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/", tarfile.DIRTYPE, mode=0o755)
        add("./usr/bin/perl", data=b"perl", mode=0o755)
        add("./usr/bin/perl5", tarfile.LNKTYPE, linkname="./usr/bin/perl")
        add("./usr/bin/sh", tarfile.SYMTYPE, linkname="dash")
        add("./dev/", tarfile.DIRTYPE, mode=0o755)
        add("./dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("./var/mail/", tarfile.DIRTYPE, mode=0o2775, gid=8)
    with tar_entries(src) as entries:
        _, diff_id, _ = _layer(tmp_path, "layer.tar", entries)
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        perl5 = tar.extractfile(members["usr/bin/perl5"]).read()
    assert "dev/null" not in members and "dev" in members
    assert members["usr/bin/perl5"].isreg() and perl5 == b"perl"
    assert members["usr/bin/sh"].issym() and members["usr/bin/sh"].linkname == "dash"
    assert members["var/mail"].mode == 0o2775 and members["var/mail"].gid == 8
    assert {m.mtime for m in members.values()} == {EPOCH}
