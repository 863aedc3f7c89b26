"""One HA cluster for this package: examples/ha-guestbook.kf (three stacked control planes
behind the keepalived + haproxy VIP, two workers, the guestbook, the storage addon) plus
apps/multi-team.kf's teams, on sandbox ``kfha`` (10.80.0.0/24), at the previous minor's
newest release until test_day2_upgrade.py upgrades it to the newest. test_ha_e2e.py brings it up
with one apply and checks what a user relies on; the day-2 modules then work on the same
cluster, in the order below, instead of each paying for a five-node bring-up. The cluster
goes down after the last test of the package; what each test measured goes to
``ha-report.json`` beside the file.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.k8s.bundle_fixture import PREVIOUS
from tests.k8s.ha.lab import PREFIX, REPORT
from tests.k8s.ha_cluster import HaCluster, example_source

#: Module order: the bring-up first; the day-2 work after it, destructive work last.
ORDER = ("test_ha_e2e", "test_addon_storage", "test_day2_tokens", "test_day2_certs",
         "test_day2_scale", "test_day2_upgrade", "test_day2_etcd")


def pytest_collection_modifyitems(session, config, items):
    """Run this package's modules in ORDER (an unknown module fails loudly), leaving every
    other test where it was: the day-2 tests need the cluster test_ha_e2e.py made."""
    ours = [i for i, item in enumerate(items) if item.module.__name__.startswith(__package__ + ".")]
    if not ours:
        return
    rank = {name: n for n, name in enumerate(ORDER)}
    picked = [items[i] for i in ours]
    unknown = {item.module.__name__ for item in picked} - {f"{__package__}.{m}" for m in ORDER}
    assert not unknown, f"add {sorted(unknown)} to tests/k8s/ha/conftest.py ORDER"
    picked.sort(key=lambda item: rank[item.module.__name__.rpartition(".")[2]])
    for i, item in zip(ours, picked):
        items[i] = item


@pytest.fixture(scope="package")
def ha(previous_bundle, tmp_path_factory):
    """The cluster at the previous minor's newest release: test_day2_upgrade.py takes it to
    the newest one, which the modules after it then run on."""
    root = tmp_path_factory.mktemp("ha")
    source = example_source("ha-guestbook.kf", PREFIX, previous_bundle,
                            extra='import "apps/multi-team.kf"\n', version=PREVIOUS)
    cluster = HaCluster(root, "ha-lab", source, "kfha", previous_bundle)
    try:
        started = time.monotonic()
        cluster.up()
        REPORT["sandbox_up_s"] = round(time.monotonic() - started, 1)
        yield cluster
    finally:
        (root / "ha-report.json").write_text(json.dumps(REPORT, indent=2))
        print(f"\nHA report ({root / 'ha-report.json'}):\n{json.dumps(REPORT, indent=2)}")
        cluster.down()


@pytest.fixture(scope="package")
def applied(ha):
    """The cluster with the file applied: test_ha_e2e.py's first test did it when it ran
    (a re-apply of an unchanged file then changes nothing); run alone, a day-2 module gets
    its cluster here."""
    proc = ha.on_hosts("apply")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    ha.wait("all five nodes Ready", lambda: (r := ha.nodes_ready()) and len(r) == 5
            and all(r.values()), 600)
    return ha
