"""The HA lab's facts, shared by its test modules (see conftest.py)."""

PREFIX = "10.80.0."
VIP = PREFIX + "100"
CONTROL_PLANES = ("cp1", "cp2", "cp3")
WORKERS = ("worker1", "worker2")
NODEPORT = 30080
#: What the tests measured, written to ha-report.json when the cluster goes down
#: (test_day2_etcd.py: etcd_backup_s, etcd_snapshot_bytes, etcd_restore_s and the restore's
#: etcd_restore_stages_s).
REPORT: dict = {}
