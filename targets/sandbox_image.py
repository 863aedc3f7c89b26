"""The sandbox host image: a Debian root filesystem built with mmdebstrap and `docker import`ed.

No container registry is reachable from the machines kubeforge is tested on, only Debian's
mirror, so the image is bootstrapped from packages. It is tagged by a hash of its recipe and
rebuilt only when the recipe changes. The image carries no key material: host keys are
generated per host at first boot and the client key is copied in when a host is created.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from pathlib import Path

from kubeforge.targets.sandbox_run import SandboxError, locked, run

SUITE = "bookworm"
REPOSITORY = "kubeforge-sandbox"
PACKAGES = (
    "openssh-server,python3,sudo,iproute2,iputils-ping,procps,curl,ca-certificates,"
    "etcd-server,etcd-client,haproxy,keepalived,containerd,runc,iptables,systemd,systemd-sysv,"
    "dbus,kmod,conntrack,socat,ethtool,ebtables,util-linux,mount"
)
# Debian enables these at install; the deploy under test must be what enables them.
DISABLED_UNITS = ("etcd.service", "haproxy.service", "keepalived.service", "containerd.service")
# Units that cannot work in a container and would only make `is-system-running` noisier.
MASKED_UNITS = ("getty@tty1.service", "console-getty.service", "systemd-firstboot.service")

SSHD_CONFIG = """\
# kubeforge sandbox: key authentication only.
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

# PID 1 of every host. Docker mounts the cgroup v1 controllers read-only inside a container
# that is not --privileged (which these machines refuse: CAP_SYS_RESOURCE is missing); a
# bind remount with SYS_ADMIN makes them writable, and it must happen before systemd starts so
# systemd, containerd and the kubelet see writable hierarchies. On cgroup v2 the loop finds
# nothing to do.
INIT_WRAPPER = """\
#!/bin/sh
# kubeforge sandbox: make the cgroup v1 controllers writable, then boot systemd.
for dir in /sys/fs/cgroup/*; do
  [ -d "$dir" ] && [ ! -L "$dir" ] && mount -o remount,bind,rw "$dir" 2>/dev/null
done
exec /sbin/init "$@"
"""
INIT = "/usr/local/sbin/kubeforge-init"

# Runs before sshd so that every host has its own keys, made on its own first boot.
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate this host's SSH host keys (kubeforge sandbox)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
RequiredBy=ssh.service
"""

# Docker gives even an `--internal` network's containers a default route via the bridge; a
# sandbox host must have no route off the machine, so it is removed at every boot (and by
# `up`, since sshd may answer before the unit ran). Docker also points /etc/resolv.conf at its
# embedded resolver on 127.0.0.11: the kubelet hands that file to CoreDNS, whose loop
# detection then finds CoreDNS answering itself and exits. The bridge's address (no resolver
# there, so queries for outside names fail fast) replaces it.
NOROUTE = "/usr/local/sbin/kubeforge-noroute"
NOROUTE_SCRIPT = """\
#!/bin/sh
# kubeforge sandbox: no route off the machine, no loopback-only resolver.
gw=$(ip route show default | awk '{print $3; exit}')
if [ -n "$gw" ] && grep -q '^nameserver 127\\.' /etc/resolv.conf; then
  printf 'nameserver %s\\n' "$gw" > /etc/resolv.conf
fi
ip route del default 2>/dev/null
ip -6 route del default 2>/dev/null
exit 0
"""
NOROUTE_UNIT = f"""\
[Unit]
Description=Remove the default route: sandbox hosts never reach off the machine (kubeforge)
After=systemd-sysctl.service

[Service]
Type=oneshot
ExecStart={NOROUTE}

[Install]
WantedBy=multi-user.target
"""

CUSTOMIZE = f"""\
set -eu
root="$1"
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root"/etc/ssh/sshd_config.d/kubeforge.conf <<'EOF'
{SSHD_CONFIG}EOF
cat > "$root"/etc/systemd/system/kubeforge-hostkeys.service <<'EOF'
{HOSTKEYS_UNIT}EOF
cat > "$root"/etc/systemd/system/kubeforge-noroute.service <<'EOF'
{NOROUTE_UNIT}EOF
cat > "$root"{INIT} <<'EOF'
{INIT_WRAPPER}EOF
cat > "$root"{NOROUTE} <<'EOF'
{NOROUTE_SCRIPT}EOF
chmod 0755 "$root"{INIT} "$root"{NOROUTE}
chroot "$root" systemctl enable kubeforge-hostkeys.service kubeforge-noroute.service
chroot "$root" systemctl disable {' '.join(DISABLED_UNITS)}
chroot "$root" systemctl mask {' '.join(MASKED_UNITS)}
# An empty machine-id makes systemd create a fresh one per container at boot.
: > "$root"/etc/machine-id
rm -f "$root"/var/lib/dbus/machine-id
install -d -m 0700 "$root"/root/.ssh
"""

# Documentation and locales are dead weight in a test host.
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*")


def recipe() -> dict:
    return {"suite": SUITE, "variant": "minbase", "packages": PACKAGES,
            "customize": CUSTOMIZE, "dpkg": DPKG_OPTIONS, "cmd": INIT}


def image_tag() -> str:
    digest = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()
    return f"{REPOSITORY}:{digest[:16]}"


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False, timeout=30).returncode == 0


def _sources_text(apt_dir: Path) -> str:
    parts = []
    main = apt_dir / "sources.list"
    if main.exists():
        parts.append(main.read_text())
    for path in sorted((apt_dir / "sources.list.d").glob("*")):
        if path.suffix in (".list", ".sources"):
            parts.append(path.read_text())
    return "\n\n".join(parts)


def debian_mirrors(apt_dir: Path = Path("/etc/apt")) -> list[str]:
    """The one-line sources of this machine's Debian mirror for SUITE and its updates and
    security suites (third-party sources such as vendor repositories are left out)."""
    entries: list[tuple[str, str, str]] = []
    text = _sources_text(apt_dir)
    for line in text.splitlines():  # one-line format: deb [opts] URI SUITE COMPONENTS...
        match = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)", line)
        if match:
            entries.append((match[1], match[2], match[3].split("#")[0].strip()))
    for stanza in re.split(r"\n\s*\n", text):  # deb822 format
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
        if "deb" in fields.get("Types", "").split() and "URIs" in fields:
            for uri in fields["URIs"].split():
                for suite in fields.get("Suites", "").split():
                    entries.append((uri, suite, fields.get("Components", "main")))
    lines = [f"deb {uri} {suite} {components}" for uri, suite, components in entries
             if re.fullmatch(rf"{SUITE}(-updates|-security|/updates)?", suite)]
    if not any(line.split()[2] == SUITE for line in lines):
        raise SandboxError(f"sandbox: no Debian {SUITE} mirror in /etc/apt/sources.list(.d); "
                           "mmdebstrap needs one to build the host image")
    return list(dict.fromkeys(lines))


def build_image(tag: str, log: Path) -> float:
    """Bootstrap the root filesystem and import it as ``tag``; returns the seconds taken."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kubeforge-image-") as tmp:
        hook = Path(tmp) / "customize.sh"
        hook.write_text(CUSTOMIZE)
        rootfs = Path(tmp) / "rootfs.tar"
        cmd = ["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}",
               *[f"--dpkgopt={opt}" for opt in DPKG_OPTIONS],
               f'--customize-hook=sh {hook} "$1"', SUITE, str(rootfs), *debian_mirrors()]
        proc = run(cmd, timeout=900, check=False)
        log.write_bytes(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            raise SandboxError(f"sandbox: mmdebstrap failed (exit {proc.returncode}, log {log}): {last}")
        run(["docker", "import", "--change", f'CMD ["{INIT}"]',
             "--change", "LABEL kubeforge.sandbox.image=1", str(rootfs), tag], timeout=300)
    return time.monotonic() - started


def ensure_image(log: Path) -> tuple[str, float | None]:
    """The cached image's tag, building it first when this recipe has no image yet; the
    second value is the build time, or None when the cache answered."""
    tag = image_tag()
    with locked("image"):  # two sessions must not bootstrap the same image at once
        if image_exists(tag):
            return tag, None
        return tag, build_image(tag, log)
