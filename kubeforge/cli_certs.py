"""`kubeforge certs ...`: inspect the certificates of a compiled cluster.

``check-expiration`` works like ``kubeadm certs check-expiration`` but over a whole build
directory: every ``*.crt``/``*.pem`` file and every client certificate embedded in a
kubeconfig, per node, with its expiry, residual time and issuing CA. It only reads public
parts; key material is never opened or printed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from cryptography import x509

from kubeforge.compiler.cert_scan import CertRow, common_name, scan
from kubeforge.errors import UsageError

__all__ = ["CertRow", "certs", "residual", "scan"]

def authority_label(path: str) -> str:
    """kubeadm's name for a CA file: pki/ca.crt -> ca, pki/etcd/ca.crt -> etcd-ca."""
    tail = path.rsplit("pki/", 1)[-1]
    return tail.rsplit(".", 1)[0].replace("/", "-")


def residual(delta: dt.timedelta) -> str:
    """Like Kubernetes' ShortHumanDuration, which kubeadm uses for this column."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    if seconds < 365 * 86400:
        return f"{seconds // 86400}d"
    return f"{seconds // (365 * 86400)}y"


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                     for r in [headers, *rows])


@click.group()
def certs() -> None:
    """Inspect the certificates of a compiled cluster, and renew them on its hosts."""


@certs.command("check-expiration")
@click.argument("build_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--at", "at", metavar="TIME",
              help="Evaluate at this ISO 8601 time instead of now (UTC when no offset).")
def check_expiration(build_dir: Path, as_json: bool, at: str | None) -> None:
    """List every certificate under BUILD_DIR (the build's <cluster> directory) with its
    expiry, residual time and certificate authority."""
    now = dt.datetime.now(dt.timezone.utc)
    if at:
        try:
            now = dt.datetime.fromisoformat(at)
        except ValueError as err:
            raise UsageError(f"--at: not an ISO 8601 time: {at!r}") from err
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
    rows = scan(build_dir)
    if not rows:
        raise UsageError(f"no certificates under {build_dir}; pass the cluster's build "
                         "directory (BUILD_DIR/<cluster>, the one holding nodes/ and pki/)")
    labels: dict[x509.Name, str] = {}
    for row in rows:
        if row.is_ca and row.kind == "certificate":
            labels.setdefault(row.issuer, authority_label(row.path))

    def record(row: CertRow) -> dict:
        left = row.not_after - now
        return {"path": row.path, "kind": row.kind, "subject": row.subject, "is_ca": row.is_ca,
                "authority": "" if row.is_ca else labels.get(row.issuer, common_name(row.issuer)),
                "expires": row.not_after.isoformat(), "residual_seconds": int(left.total_seconds()),
                "residual": residual(left), "expired": left.total_seconds() <= 0}

    records = [record(r) for r in rows]
    if as_json:
        click.echo(json.dumps({"now": now.isoformat(), "certificates": records},
                              indent=2, sort_keys=True))
        return

    def expires(rec: dict) -> str:
        return dt.datetime.fromisoformat(rec["expires"]).strftime("%b %d, %Y %H:%M UTC")

    leaves = [(r["path"], expires(r), r["residual"], r["authority"]) for r in records
              if not r["is_ca"]]
    cas = [(r["path"], expires(r), r["residual"]) for r in records if r["is_ca"]]
    click.echo(_table(("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY"),
                      leaves))
    if cas:
        click.echo()
        click.echo(_table(("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME"), cas))
