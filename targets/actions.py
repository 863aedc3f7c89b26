"""Plan steps as shell scripts: the one place that knows how an action reaches a host.

Every script is target independent (``Session.run`` with optional stdin), so uploads need no
SFTP and work the same through ``sudo``. File contents travel only on stdin, never in a
command line, and nothing here logs them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kubeforge.compiler.artifacts import KEYED, digest_matches
from kubeforge.compiler.plan import Command, Service, Step, Upload
from kubeforge.errors import KubeforgeError

#: Programs that only Kubernetes packages provide; a host without them cannot run steps
#: that call them (sandbox hosts, or a `preinstalled` host that is not).
KUBERNETES_PROGRAMS = ("kubeadm", "kubelet", "kubectl", "crictl", "kube-apiserver", "cilium")
TEMP_SUFFIX = ".kftmp"
PROBE_TIMEOUT = 30
#: Exit code of an upload whose bytes arrived incomplete (the temp file is removed).
INCOMPLETE = 97


class BuildMismatch(KubeforgeError):
    """The build directory does not hold what plan.json promises (stale or edited build)."""


# ================================================================================ requirements

# Boundaries after which a new simple command starts in sh syntax.
_COMMAND_START = re.compile(r"\$\(|`|&&|\|\||[;|&(!{]|\b(?:then|do|else|until|while|if)\b")
_SKIP_WORDS = {"exec", "sudo", "env", "command", "nohup", "-", "time"}


def _programs_in_shell(text: str) -> set[str]:
    """Programs in command position: the first word of each simple command, after
    variable assignments. ``apt-get install kubeadm`` runs apt-get, not kubeadm."""
    found = set()
    text = re.sub(r"'[^']*'", "''", text)  # single quotes are literal text: no commands
    for segment in _COMMAND_START.split(text):
        for word in segment.split():
            if "=" in word.split("/")[0] or word in _SKIP_WORDS or word.startswith("-"):
                continue
            found.add(PurePosixPath(word.strip("'\"")).name)
            break
    return found


def _programs_in_argv(argv: tuple[str, ...]) -> set[str]:
    if not argv:
        return set()
    if argv[0] == "timeout":  # timeout [-k N] DURATION PROGRAM ...
        i = 1
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in ("-k", "-s") else 1
        return _programs_in_argv(argv[i + 1:])
    if argv[0] in ("sh", "bash") and len(argv) > 2 and argv[1] == "-c":
        return _programs_in_shell(argv[2])
    return {PurePosixPath(argv[0]).name}


def required_programs(step: Step) -> tuple[str, ...]:
    """Kubernetes programs ``step`` runs: declared in the plan, else read from its command
    and its probe."""
    if step.requires:
        return step.requires
    found: set[str] = set()
    action = step.action
    if isinstance(action, Command):
        found |= (_programs_in_shell(action.shell) if action.shell is not None
                  else _programs_in_argv(action.argv))
    elif isinstance(action, Service) and action.name in KUBERNETES_PROGRAMS:
        found.add(action.name)
    if step.check.kind == "probe":
        found |= _programs_in_shell(step.check.value)
    return tuple(p for p in KUBERNETES_PROGRAMS if p in found)


def which_script(programs: tuple[str, ...]) -> str:
    """Prints the programs among ``programs`` that are missing."""
    names = " ".join(shlex.quote(p) for p in programs)
    return f'for p in {names}; do command -v "$p" >/dev/null 2>&1 || echo "$p"; done'


# ================================================================================ scripts


#: The file's change time (ns), inode and size: writing or replacing the file changes it, and
#: unlike the modification time no tool can set it back.
STAT = "%.9Z:%i:%s"


def upload_check_script(upload: Upload, clean: bool, known: str = "") -> str:
    """Prints ``<mode> <owner> <stat> <sha256>`` of the file, or exits 3 if it is absent. With
    ``clean``, first removes temp files an interrupted upload of this path left behind.

    ``known`` is the stat an earlier apply saw right after it wrote or verified this very
    content: while the file still has it, nobody touched the file since, and the digest is
    printed as ``=`` instead of reading the whole file again (rsync's quick check, made
    stricter by the change time; bundle binaries and images are hundreds of MB per host)."""
    p = shlex.quote(upload.path)
    cleanup = ""
    if clean:
        d, b = shlex.quote(str(PurePosixPath(upload.path).parent)), \
            shlex.quote("." + PurePosixPath(upload.path).name)
        cleanup = f"rm -f {d}/{b}.*{TEMP_SUFFIX} 2>/dev/null; "
    return (f"{cleanup}[ -f {p} ] || exit 3; s=$(stat -c '{STAT}' {p}); "
            f"if [ \"$s\" = {shlex.quote(known)} ]; then d==; "
            f"else d=$(sha256sum < {p} | cut -c1-64); fi; "
            f"printf '%s %s %s\\n' \"$(stat -c '%a %U:%G' {p})\" \"$s\" \"$d\"")


def upload_matches(upload: Upload, output: bytes, sha256: str) -> str | None:
    """The file's stat if the host's file (``upload_check_script``'s output) has the mode,
    owner and content (``sha256``, from :func:`host_sha256`) the upload would give it."""
    try:
        mode, owner, stat, digest = output.decode().split()
        same = (int(mode, 8), owner) == (upload.mode, upload.owner) and digest in ("=", sha256)
    except ValueError:
        return None
    return stat if same else None


def host_sha256(build_root: Path, upload: Upload, digest_key: bytes | None) -> str:
    """The SHA-256 the file on the host must have: plan.json's, except for a secret upload,
    whose keyed digest only the build's own copy (checked against it) can stand in for."""
    if not upload.sha256.startswith(KEYED):
        return upload.sha256
    return Payload.read(build_root, upload, digest_key).sha256


def upload_script(upload: Upload, sha256: str) -> str:
    """Receives the content on stdin into a temp file next to the target, verifies it, sets
    owner and mode on the temp file, then renames: readers see the old file or the complete
    new one, never a partial one or one with the wrong mode. A cut connection leaves no temp
    file behind (trap), and the hash check refuses a truncated stream."""
    path = PurePosixPath(upload.path)
    d, p = shlex.quote(str(path.parent)), shlex.quote(upload.path)
    prefix = shlex.quote(f".{path.name}.")
    owner, _, group = upload.owner.partition(":")
    return "\n".join([
        "set -e", "umask 022",
        f"mkdir -p {d}",
        f"rm -f {d}/{prefix}*{TEMP_SUFFIX}",
        f"t=$(mktemp {d}/{prefix}XXXXXX{TEMP_SUFFIX})",
        "trap 'rm -f \"$t\"' EXIT",
        'cat > "$t"',
        f'[ "$(sha256sum < "$t" | cut -c1-64)" = {sha256} ] '
        f"|| {{ echo 'the upload of {upload.path} arrived incomplete' >&2; exit {INCOMPLETE}; }}",
        f'chown {shlex.quote(owner + ":" + (group or owner))} "$t"',
        f'chmod {upload.mode:04o} "$t"',
        f'mv -f "$t" {p}',
        "trap - EXIT",
        f"stat -c '{STAT}' {p}",  # the last line: what the next apply's quick check expects
    ])


def service_script(service: Service, restart: bool) -> str:
    name = shlex.quote(service.name)
    no_block = " --no-block" if service.no_block else ""
    lines = ["set -e", "systemctl daemon-reload",
             f"systemctl {'enable' if service.enabled else 'disable'} --quiet {name}"]
    if restart and service.state == "started":
        lines.append(f"systemctl restart{no_block} {name}")
    elif restart and service.state is None:
        lines.append(f"systemctl try-restart{no_block} {name}")  # only if already running
    elif service.state == "started":
        lines.append(f"systemctl start{no_block} {name}")
    elif service.state == "stopped":
        lines.append(f"systemctl stop {name}")
    return "\n".join(lines)


def command_script(command: Command) -> str:
    return command.shell if command.shell is not None else shlex.join(command.argv)


def action_timeout(step: Step) -> int:
    action = step.action
    if isinstance(action, Command):
        return action.timeout
    return 120  # uploads and service changes; etcd's start is --no-block


@dataclass(frozen=True)
class Payload:
    """An upload's bytes, read from the build and checked against the plan's hash."""

    data: bytes
    sha256: str  # of ``data``: what the host's copy must hash to

    @classmethod
    def read(cls, build_root: Path, upload: Upload, digest_key: bytes | None = None) -> "Payload":
        """``digest_key``: the state directory's, needed for secret uploads."""
        source = build_root / upload.source
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise BuildMismatch(f"{source}: {exc.strerror}; compile again") from None
        sha256 = hashlib.sha256(data).hexdigest()
        if not (digest_matches(data, upload.sha256, digest_key)
                if upload.sha256.startswith(KEYED) else sha256 == upload.sha256):
            raise BuildMismatch(f"{source} does not match plan.json (stale build?); "
                                "compile again")
        return cls(data, sha256)

    def __repr__(self) -> str:  # never show content, even in a traceback
        return f"Payload({len(self.data)} bytes)"
