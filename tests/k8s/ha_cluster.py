"""An HA cluster on sandbox hosts made from an example file, for the HA e2e tests and
bench/cluster.py: the example's text with the sandbox's subnet and the test bundle's path put
in, its imports copied beside it, the sandbox brought up by `kubeforge sandbox up FILE` (sized
and addressed by the file, as the README's newcomer does) and everything else done through
the `kubeforge` command, the bundle's own kubectl (through the VIP, from this machine) and SSH
with the sandbox's known_hosts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.deploy.host_shell import HostShell

EXAMPLE_SUBNET = "10.77.0."
#: kubectl errors of a request the API server never answered.
TRANSIENT = re.compile(r"Unable to connect to the server|TLS handshake timeout|"
                       r"http2: client connection lost|connection reset by peer|unexpected EOF")
BUNDLE_PATH = 'path "bundles/k8s-1.37.2"'
EXAMPLE_VERSION = 'kubernetes "1.37.2"'


def example_source(name: str, subnet_prefix: str, bundle: Path, extra: str = "",
                   version: str = "") -> str:
    """``examples/NAME`` for a sandbox on ``subnet_prefix`` (``"10.80.0."``) installing from
    ``bundle`` (of ``version``, default the example's); every replacement must happen, or the
    example changed under the test."""
    text = (EXAMPLES / name).read_text()
    assert EXAMPLE_SUBNET in text and BUNDLE_PATH in text, f"{name} no longer fits this helper"
    if version:
        assert text.count(EXAMPLE_VERSION) == 1, f"{name} no longer fits this helper"
        text = text.replace(EXAMPLE_VERSION, f'kubernetes "{version}"')
    return (text.replace(EXAMPLE_SUBNET, subnet_prefix)
            .replace(BUNDLE_PATH, f'path "{bundle}"') + extra)


def upgraded_source(text: str, release: tuple[str, str], bundles: tuple[Path, Path]) -> str:
    """The file's text as a person edits it for an upgrade: ``release`` (from, to) and the
    bundle path (from, to); both must be there exactly once."""
    old_version, old_path = f'kubernetes "{release[0]}"', f'path "{bundles[0]}"'
    assert text.count(old_version) == 1 and text.count(old_path) == 1, "not the file it was"
    return (text.replace(old_version, f'kubernetes "{release[1]}"')
            .replace(old_path, f'path "{bundles[1]}"'))


class HaCluster:
    def __init__(self, root: Path, name: str, source: str, sandbox_name: str,
                 bundle: Path) -> None:
        self.root, self.name, self.sandbox_name = root, name, sandbox_name
        self.kf = root / f"{name}.kf"
        self.kf.write_text(source)
        shutil.copytree(EXAMPLES / "apps", root / "apps", dirs_exist_ok=True)
        self.sandbox_dir = root / "sandbox"
        self.kubectl_bin = bundle / "bin" / "kubectl"
        self.outputs: list[str] = []
        self.shell: HostShell | None = None
        self.box = None

    # ----- kubeforge --------------------------------------------------------------------
    def kubeforge(self, *args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "kubeforge", *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def on_hosts(self, command: str, *args: str, timeout: int = 2400):
        """``kubeforge COMMAND FILE ARGS -i inventory --known-hosts ...`` of the sandbox."""
        return self.kubeforge(command, str(self.kf), *args, "-i",
                              str(self.sandbox_dir / "inventory.yaml"), "--known-hosts",
                              str(self.sandbox_dir / "known_hosts"), timeout=timeout)

    def up(self) -> dict:
        from kubeforge.targets.sandbox import Sandbox

        proc = self.kubeforge("sandbox", "up", str(self.kf), "--dir", str(self.sandbox_dir),
                              "--name", self.sandbox_name, "--json", timeout=1200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        self.box = Sandbox(self.sandbox_dir)
        self.shell = HostShell(self.box)
        return json.loads(proc.stdout)

    def down(self) -> None:
        if self.shell is not None:
            self.shell.close()
        self.kubeforge("sandbox", "down", "--dir", str(self.sandbox_dir), timeout=600)

    def container(self, host: str) -> str:
        return f"{self.sandbox_name}-{host}"

    def address(self, host: str) -> str:
        return {h.name: h.address for h in self.box.hosts()}[host]

    def vip_holder(self, vip: str, candidates: tuple[str, ...], down: str = "") -> str:
        """The one host of ``candidates`` (but ``down``) whose eth0 carries ``vip``."""
        holders = [h for h in candidates if h != down
                   and self.ssh(h, "ip -4 -o addr show dev eth0")[1].count(f" {vip}/") == 1]
        assert len(holders) == 1, holders
        return holders[0]

    # ----- the cluster, from outside ------------------------------------------------------
    @property
    def admin_conf(self) -> Path:
        return self.root / "build" / self.name / "kubeconfigs" / "admin.conf"

    def kubectl(self, *args: str, timeout: float = 60, kubeconfig: Path | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """The bundle's kubectl on this machine, through the endpoint (the VIP). With
        ``check``, a request the API never answered (a connection cut, a TLS handshake that
        timed out on a loaded machine) is sent again, twice at most: the tests that are about
        the API answering (failover) use ``check=False`` and their own deadlines."""
        for attempt in range(3):
            proc = subprocess.run([str(self.kubectl_bin), "--kubeconfig",
                                   str(kubeconfig or self.admin_conf), *args],
                                  capture_output=True, text=True, timeout=timeout)
            if not (check and proc.returncode and TRANSIENT.search(proc.stderr)):
                break
            time.sleep(2 * (attempt + 1))
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stderr[-3000:]}"
        return proc

    def json(self, *args: str, **kw) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", **kw).stdout)

    def ssh(self, host: str, script: str) -> tuple[int, str]:
        assert self.shell is not None
        return self.shell(host, script)

    def wait(self, what: str, test, timeout: float = 300, every: float = 2.0):
        """Poll ``test()`` until it returns something truthy; fail with ``what`` at the
        deadline (a deadline, not a timing assertion: the time is measured elsewhere)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = test()
            except (AssertionError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(every)
        raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")

    def ready_pods(self, namespace: str, selector: str) -> list[dict]:
        pods = self.json("-n", namespace, "get", "pods", "-l", selector)["items"]
        return [p for p in pods if p["metadata"].get("deletionTimestamp") is None
                and any(c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", []))]

    def nodes_ready(self) -> dict[str, bool]:
        return {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in n["status"]["conditions"])
                for n in self.json("get", "nodes", timeout=20)["items"]}


def http_get(url: str, timeout: float = 5) -> tuple[int, dict, str]:
    """Status, headers and body of a plain GET (an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def changed_steps(apply_stderr: str) -> list[str]:
    """The step ids an apply printed as changed (one line each without a terminal)."""
    return [line.split()[1] for line in apply_stderr.splitlines()
            if line.startswith("changed ") and len(line.split()) >= 2]
