"""Remove key material from anything kubeforge prints or logs.

Step output is the one place a secret could slip out: ``kubeadm init`` prints join commands
with the bootstrap token, and a failing command may echo a file it read. Both shapes are
recognisable, so they are replaced wherever output is kept (summary, log, timings).
"""

from __future__ import annotations

import re

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
                  re.S)
#: kubeadm bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}
_TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
#: A JSON web token (service-account tokens from the TokenRequest API): a header and a
#: payload that are base64url JSON objects (``{"`` encodes as ``eyJ``), and a signature.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
#: ``--token X``, ``password: X``, ``secret=X``: whatever the value looks like.
_ASSIGNED = re.compile(r"(?i)(--token[ =]|\b(?:token|password|secret)\s*[=:]\s*)(\S+)")


def redact(text: str) -> str:
    text = _PEM.sub("<private key redacted>", text)
    text = _JWT.sub("<token redacted>", text)
    text = _ASSIGNED.sub(lambda m: f"{m.group(1)}<redacted>", text)
    return _TOKEN.sub("<token redacted>", text)


def tail(data: bytes, lines: int = 8) -> tuple[str, ...]:
    """The last ``lines`` non-empty lines of ``data``, decoded and redacted."""
    text = redact(data.decode("utf-8", "replace"))
    return tuple(line for line in text.splitlines() if line.strip())[-lines:]
