"""examples/guestbook.kf compiles to the objects of the classic guestbook all-in-one file.

The expected objects below are those of kubernetes/examples
guestbook/all-in-one/guestbook-all-in-one.yaml (Services and Deployments for the redis
master, the redis replicas and the PHP frontend), reduced to the fields that file sets.
"""

from __future__ import annotations

import yaml

from kubeforge.compiler.emit.manifests import manifest_artifacts
from kubeforge.compiler.lower import load_program
from tests.conftest import EXAMPLES

CLASSIC = """
apiVersion: v1
kind: Service
metadata: {name: redis-master, labels: {app: redis, tier: backend, role: master}}
spec:
  ports: [{port: 6379, targetPort: 6379}]
  selector: {app: redis, tier: backend, role: master}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis-master}
spec:
  selector: {matchLabels: {app: redis, role: master, tier: backend}}
  replicas: 1
  template:
    metadata: {labels: {app: redis, role: master, tier: backend}}
    spec:
      containers:
      - name: master
        image: registry.k8s.io/redis:e2e
        resources: {requests: {cpu: 100m, memory: 100Mi}}
        ports: [{containerPort: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: redis-slave, labels: {app: redis, tier: backend, role: slave}}
spec:
  ports: [{port: 6379}]
  selector: {app: redis, tier: backend, role: slave}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis-slave}
spec:
  selector: {matchLabels: {app: redis, role: slave, tier: backend}}
  replicas: 2
  template:
    metadata: {labels: {app: redis, role: slave, tier: backend}}
    spec:
      containers:
      - name: slave
        image: gcr.io/google_samples/gb-redisslave:v3
        resources: {requests: {cpu: 100m, memory: 100Mi}}
        env: [{name: GET_HOSTS_FROM, value: dns}]
        ports: [{containerPort: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend, labels: {app: guestbook, tier: frontend}}
spec:
  type: NodePort
  ports: [{port: 80}]
  selector: {app: guestbook, tier: frontend}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend}
spec:
  selector: {matchLabels: {app: guestbook, tier: frontend}}
  replicas: 3
  template:
    metadata: {labels: {app: guestbook, tier: frontend}}
    spec:
      containers:
      - name: php-redis
        image: gcr.io/google-samples/gb-frontend:v4
        resources: {requests: {cpu: 100m, memory: 100Mi}}
        env: [{name: GET_HOSTS_FROM, value: dns}]
        ports: [{containerPort: 80}]
"""


def contains(actual, expected, path="") -> list[str]:
    """Every field of ``expected`` is in ``actual`` with the same value."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping"]
        return [p for k, v in expected.items() for p in contains(actual.get(k), v, f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [p for i, (a, e) in enumerate(zip(actual, expected)) for p in contains(a, e, f"{path}[{i}]")]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def test_guestbook_matches_the_classic_all_in_one():
    program, _ = load_program(EXAMPLES / "guestbook.kf")
    ours = [d for a in manifest_artifacts(program) for d in yaml.safe_load_all(a.content)]
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in ours}
    classic = list(yaml.safe_load_all(CLASSIC))
    assert set(by_key) == {(d["kind"], d["metadata"]["name"]) for d in classic}
    problems = []
    for expected in classic:
        problems += contains(by_key[(expected["kind"], expected["metadata"]["name"])], expected,
                             f"{expected['kind']}/{expected['metadata']['name']}")
    assert problems == []
