"""Bootstrap-style bearer tokens a file declares: ``token ci { ttl 24h  bind view in shop }``.

The bootstrap-token authenticator (on in every kubeadm cluster) accepts a bearer token
``<id>.<secret>`` while kube-system holds a Secret ``bootstrap-token-<id>`` of type
``bootstrap.kubernetes.io/token`` with ``usage-bootstrap-authentication: "true"`` and an
``expiration`` not yet past. The request is then user ``system:bootstrap:<id>`` in group
``system:bootstrappers``, the Secret's ``auth-extra-groups`` (each
``system:bootstrappers:...``) and ``system:authenticated``.

* The id comes from the token's name, so who the token is follows from the file alone
  (`rbac can-i` and `rbac matrix` predict for it without the state directory). Kubernetes
  treats the id as public (it names the Secret); only the secret half authenticates.
* The secret half is random, made once and kept in the state directory
  (``tokens/<name>``, 0600) with the time it was issued; the expiration is that time plus
  the declared ``ttl``, so recompiling gives the same Secret. A token past its expiration
  is issued anew by the next compile (the controller manager's token cleaner deletes
  expired token Secrets, so re-applying the old one would be pointless).
* Each token's own group is ``system:bootstrappers:kubeforge:<name>``: its `bind`
  statements bind that group, since no file can bind a ``system:bootstrap:`` user by name.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeforge.compiler.ir import Subject
from kubeforge.compiler.rbac import AUTHENTICATED, Identity
from kubeforge.errors import StateError

if TYPE_CHECKING:  # the state module brings cryptography's x509, which `check` never needs
    from kubeforge.compiler.state import StateDir

USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS = "system:bootstrappers"
#: What the API server accepts in auth-extra-groups (cluster-bootstrap/token/util).
GROUP_RE = re.compile(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")
#: kubeadm's join tokens' groups: bindings kubeforge does not model (node bootstrap, CSR
#: auto-approval), so a declared token may not join them.
KUBEADM_GROUPS = "system:bootstrappers:kubeadm:"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_RE = re.compile(r"\A[a-z0-9]{16}\Z")


def token_id(name: str) -> str:
    """Six characters of ``[a-z0-9]``, the same for the same name on every machine."""
    number = int.from_bytes(hashlib.sha256(f"kubeforge-token:{name}".encode()).digest(), "big")
    out = []
    for _ in range(6):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def own_group(name: str) -> str:
    return f"{BOOTSTRAPPERS}:kubeforge:{name}"


def user_name(name: str) -> str:
    return USER_PREFIX + token_id(name)


def extra_groups(token: Subject) -> tuple[str, ...]:
    """The Secret's auth-extra-groups: the token's own group, then the declared ones."""
    return tuple(dict.fromkeys((own_group(token.name), *token.groups)))


def identity(token: Subject) -> Identity:
    """The user the authenticator reports: its groups sorted, as upstream's ``GetGroups``
    returns them, then ``system:authenticated``."""
    groups = sorted({BOOTSTRAPPERS, *extra_groups(token)})
    return Identity(user_name(token.name), (*groups, AUTHENTICATED))


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedToken:
    name: str
    secret: str
    issued: dt.datetime
    expires: dt.datetime
    renewed_from: dt.datetime | None = None  # the expiration of the token this one replaced

    @property
    def id(self) -> str:
        return token_id(self.name)

    @property
    def bearer(self) -> str:
        return f"{self.id}.{self.secret}"


def state_file(name: str) -> str:
    return f"tokens/{name}"


def load(state: StateDir, token: Subject) -> IssuedToken | None:
    """The token as the state directory keeps it, None when it was never issued."""
    rel = state_file(token.name)
    data = state.read(rel)
    if data is None:
        return None
    try:
        kept = json.loads(data)
        bearer, issued_text = kept["token"], kept["issued"]
        issued = dt.datetime.strptime(issued_text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc)
        token_id_, _, secret = bearer.partition(".")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StateError(f"{state.path(rel)} is not a token kubeforge wrote (corrupt state?); "
                         "remove it to issue a new one") from None
    if token_id_ != token_id(token.name) or not _SECRET_RE.match(secret):
        raise StateError(f"{state.path(rel)} does not hold token `{token.name}` "
                         f"({token_id(token.name)}.<16 of [a-z0-9]>); remove it to issue a new one")
    assert token.ttl_seconds is not None
    return IssuedToken(token.name, secret, issued,
                       issued + dt.timedelta(seconds=token.ttl_seconds))


def ensure(state: StateDir, token: Subject, now: dt.datetime) -> IssuedToken:
    """The kept token, or a new one when none was issued or the kept one has expired."""
    kept = load(state, token)
    if kept is not None and kept.expires > now:
        return kept
    now = now.astimezone(dt.timezone.utc).replace(microsecond=0)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    state.write(state_file(token.name), (json.dumps(
        {"token": f"{token_id(token.name)}.{secret}", "issued": rfc3339(now)}) + "\n").encode())
    assert token.ttl_seconds is not None
    return IssuedToken(token.name, secret, now, now + dt.timedelta(seconds=token.ttl_seconds),
                       kept.expires if kept is not None else None)


def secret_doc(token: Subject, issued: IssuedToken) -> dict:
    """The bootstrap-token Secret: authentication only (no signing of cluster-info)."""
    data = {
        "token-id": issued.id,
        "token-secret": issued.secret,
        "expiration": rfc3339(issued.expires),
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": ",".join(extra_groups(token)),
        "description": token.description or f"kubeforge token {token.name}",
    }
    # `data`, as the file's other Secrets: the field the live object has, so `kubectl diff`
    # compares like with like and an unchanged re-apply changes nothing.
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + issued.id, "namespace": "kube-system",
                         "labels": {"app.kubernetes.io/managed-by": "kubeforge"}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
