"""Samplers the day-2 tests run while they change the cluster: the API through the VIP, and
the guestbook through every node's NodePort, each request on a new connection."""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import time
from pathlib import Path

import yaml

from tests.k8s.ha.lab import NODEPORT, VIP
from tests.k8s.ha_cluster import HaCluster


class _Sampler:
    """Calls ``_one`` every 0.2 s in a thread until the ``with`` block ends."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, bool, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> tuple[bool, str]:
        raise NotImplementedError

    def _run(self) -> None:
        while not self.stop.is_set():
            ok, what = self._one()
            self.samples.append((time.monotonic(), ok, what))
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=15)

    def summary(self) -> dict:
        ok_times = [t for t, ok, _ in self.samples if ok]
        edges = [self.samples[0][0], *ok_times, self.samples[-1][0]] if self.samples else []
        failed = [what for _, ok, what in self.samples if not ok]
        return {"requests": len(self.samples), "failed": len(failed),
                "failures": sorted(set(failed)),
                "longest_gap_s": round(max((b - a for a, b in zip(edges, edges[1:])),
                                           default=0.0), 1)}


class VipSampler(_Sampler):
    """GET /version through the VIP on a new TLS connection each time, as admin."""

    def __init__(self, ha: HaCluster, tmp: Path) -> None:
        super().__init__()
        user = yaml.safe_load(ha.admin_conf.read_text())
        (tmp / "ca.crt").write_bytes(base64.b64decode(
            user["clusters"][0]["cluster"]["certificate-authority-data"]))
        creds = user["users"][0]["user"]
        (tmp / "c.crt").write_bytes(base64.b64decode(creds["client-certificate-data"]))
        key = tmp / "c.key"
        key.touch(mode=0o600)
        key.write_bytes(base64.b64decode(creds["client-key-data"]))
        self.ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
        self.ctx.load_cert_chain(str(tmp / "c.crt"), str(key))

    def _one(self) -> tuple[bool, str]:
        conn = http.client.HTTPSConnection(VIP, 8443, context=self.ctx, timeout=5)
        try:
            conn.request("GET", "/version")
            answer = conn.getresponse()
            answer.read()
            return answer.status == 200, str(answer.status)
        except (OSError, http.client.HTTPException) as exc:
            return False, type(exc).__name__
        finally:
            conn.close()


class GuestbookSampler(_Sampler):
    """Reads the guestbook's messages through each node's NodePort in turn, as a load
    balancer in front of the nodes would spread its users."""

    def __init__(self, ha: HaCluster, nodes: tuple[str, ...]) -> None:
        super().__init__()
        self.addresses = [ha.address(n) for n in nodes]
        self.turn = 0

    def _one(self) -> tuple[bool, str]:
        address = self.addresses[self.turn % len(self.addresses)]
        self.turn += 1
        conn = http.client.HTTPConnection(address, NODEPORT, timeout=5)
        try:
            conn.request("GET", "/guestbook.php?cmd=get&key=messages")
            answer = conn.getresponse()
            body = answer.read()
            return answer.status == 200 and body.startswith(b'{"data"'), str(answer.status)
        except (OSError, http.client.HTTPException) as exc:
            return False, type(exc).__name__
        finally:
            conn.close()
