"""A fake target: hosts are dicts of files and a set of running services, commands are
interpreted from the scripts ``targets.actions`` writes. Enough to test scheduling, state,
resume and restarts without sshd; the real thing is covered by the e2e tests."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

from kubeforge.compiler.plan import (Check, Command, Plan, PlanHost, Service, Step, Upload,
                                     probe)
from kubeforge.targets.base import CommandOutput, ConnectionLost, HostSpec, TargetError


def _fake_pem(kind: str, body: str) -> bytes:
    """A PEM block that only looks like a private key (built here so no file in the
    repository carries a private-key header)."""
    label = " ".join(filter(None, (kind, "PRIVATE", "KEY")))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def fake_stat(data: bytes, mode: int, owner: str) -> str:
    """A file's ``actions.STAT``: any change of content, mode or owner changes it."""
    tag = int(hashlib.sha256(repr((data, mode, owner)).encode()).hexdigest()[:8], 16)
    return f"1.000000000:{tag}:{len(data)}"


def _check(files: dict[str, tuple[bytes, int, str]], script: str) -> CommandOutput:
    """One upload check: mode, owner, the stat and the digest, or ``=`` for the known stat."""
    path = re.search(r"\[ -f (\S+) \]", script).group(1)
    if path not in files:
        return CommandOutput(3, b"", b"", 0.0)
    data, mode, owner = files[path]
    stat = fake_stat(data, mode, owner)
    known = re.search(r'if \[ "\$s" = (\S+) \]', script).group(1).strip("'")
    digest = "=" if known == stat else hashlib.sha256(data).hexdigest()
    return CommandOutput(0, f"{mode:o} {owner} {stat} {digest}\n".encode(), b"", 0.0)


def answer_checks(files: dict[str, tuple[bytes, int, str]], script: str) -> CommandOutput | None:
    """The answer to an upload check or a batch of them (``upload_checks.batch_script``), or
    None if ``script`` is neither."""
    if "sha256sum <" not in script or "cat >" in script:
        return None
    checks = re.findall(r'^\( (.*) \); echo "kf-check \$\?"$', script, re.M)
    if not checks:
        return _check(files, script)
    out = b""
    for check in checks:
        one = _check(files, check)
        out += one.stdout + f"kf-check {one.exit_code}\n".encode()
    return CommandOutput(0, out, b"", 0.0)


@dataclass
class FakeHost:
    files: dict[str, tuple[bytes, int, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    programs: set[str] = field(default_factory=lambda: {"sh"})
    fail: dict[str, int] = field(default_factory=dict)  # script substring -> exit code
    drop_next: int = 0  # drop the connection on the next N commands


class FakeSession:
    def __init__(self, host: HostSpec, state: FakeHost, lock: threading.Lock) -> None:
        self.host = host
        self.state = state
        self.lock = lock

    def run(self, script: str, *, timeout: float, stdin: bytes | None = None) -> CommandOutput:
        with self.lock:
            s = self.state
            if s.drop_next:
                s.drop_next -= 1
                raise ConnectionLost(f"{self.host.name}: dropped")
            s.log.append(script)
            for needle, code in s.fail.items():
                if needle in script:
                    return CommandOutput(code, b"", f"boom: {needle}\n".encode(), 0.0)
            answer = answer_checks(s.files, script)
            if answer is not None:
                return answer
            return self._one(script, stdin)

    def _one(self, script: str, stdin: bytes | None) -> CommandOutput:
        s = self.state
        if script.startswith("for p in"):
            wanted = re.search(r"for p in (.*?); do", script).group(1).split()
            return CommandOutput(0, "\n".join(p for p in wanted
                                              if p not in s.programs).encode(), b"", 0.0)
        if "cat >" in script:  # upload
            path = re.search(r"mv -f \"\$t\" (\S+)", script).group(1)
            mode = int(re.search(r"chmod (\d+)", script).group(1), 8)
            owner = re.search(r"chown (\S+)", script).group(1)
            s.files[path] = (stdin or b"", mode, owner)
            return CommandOutput(0, f"{fake_stat(stdin or b'', mode, owner)}\n".encode(),
                                 b"", 0.0)
        if script == "kubeadm init":  # leaves its marker, as the real one does
            s.files["/etc/app/inited"] = (b"", 0o644, "root:root")
        if script.startswith("test -f "):
            return CommandOutput(0 if script.split()[2] in s.files else 1, b"", b"", 0.0)
        return CommandOutput(0, b"", b"", 0.0)

    def close(self) -> None:
        pass


class FakeTarget:
    name = "fake"

    def __init__(self, hosts: dict[str, FakeHost], unreachable: set[str] = frozenset()) -> None:
        self.hosts = hosts
        self.unreachable = unreachable
        self.opened: list[str] = []
        self.lock = threading.Lock()

    def open(self, host: HostSpec) -> FakeSession:
        if host.name in self.unreachable:
            raise TargetError(f"{host.name}: cannot connect")
        self.opened.append(host.name)
        return FakeSession(host, self.hosts[host.name], self.lock)

    def close(self) -> None:
        pass


def upload(host: str, phase: str, path: str, content: bytes, source: str,
           needs: tuple[str, ...] = (), secret: bool = False) -> Step:
    sha = hashlib.sha256(content).hexdigest()
    action = Upload(path, source, sha, 0o600 if secret else 0o644, "root:root", secret)
    return Step(f"{host}/{phase}/upload-{path.strip('/').replace('/', '-')}", host, phase,
                action, check=Check("sha256", sha), needs=needs)


def small_plan(build_root, hosts=("a", "b")) -> Plan:
    """Per host: preflight check, a config upload, a secret upload, a service restarting on
    the config, a probe-gated command; host b's command also needs host a's service."""
    steps = []
    for h in hosts:
        (build_root / "nodes" / h).mkdir(parents=True, exist_ok=True)
        cfg = f"config of {h}\n".encode()
        key = _fake_pem("EC", "secret")
        (build_root / f"nodes/{h}/app.conf").write_bytes(cfg)
        (build_root / f"nodes/{h}/app.key").write_bytes(key)
        pre = Step(f"{h}/preflight/root", h, "preflight", Command(shell="true", timeout=10))
        up = upload(h, "os-prepare", "/etc/app/app.conf", cfg, f"nodes/{h}/app.conf",
                    (pre.id,))
        sec = upload(h, "pki", "/etc/app/app.key", key, f"nodes/{h}/app.key", (up.id,), True)
        svc = Step(f"{h}/loadbalancer/service-app", h, "loadbalancer",
                   Service("app", restart_on=(up.id,)),
                   check=probe("systemctl is-active app"), needs=(sec.id, up.id))
        needs = (svc.id,) + ((f"{hosts[0]}/loadbalancer/service-app",) if h != hosts[0] else ())
        cmd = Step(f"{h}/etcd/init", h, "etcd",
                   Command(argv=("kubeadm", "init"), retry_safe=False),
                   check=probe("test -f /etc/app/inited"), needs=needs)
        steps += [pre, up, sec, svc, cmd]
    return Plan("demo", tuple(PlanHost(h, f"10.0.0.{i + 1}", ("control-plane",))
                              for i, h in enumerate(hosts)), tuple(steps))
