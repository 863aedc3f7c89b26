"""Literal interpretation: quantities, durations, ports, percentages and names."""

from __future__ import annotations

import re

from kubeforge.dsl.ast import Value

# Kubernetes resource.Quantity (decimal and binary SI suffixes, plain numbers).
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_BYTES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h|d|w|y)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class ValueProblem(ValueError):
    """A literal that is well-formed syntax but not a valid value; carries a hint."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def text(value: Value) -> str:
    """A literal in a string position as Kubernetes expects it: `true`, `8080`, `0.5` as
    written, strings unquoted (never Python's `True`)."""
    return str(value)


def quantity(value: Value) -> str:
    text = value.text
    if not _QUANTITY.match(text):
        raise ValueProblem(f"`{text}` is not a Kubernetes quantity",
                           "use a number with an SI suffix, e.g. 100m, 0.5, 128Mi, 10Gi")
    return text


def quantity_bytes(text: str) -> float:
    m = re.match(r"^([0-9.]+)([A-Za-z]*)$", text)
    assert m
    number, suffix = float(m.group(1)), m.group(2)
    if suffix == "m":
        return number / 1000
    return number * _BYTES[suffix]


def memory_mib(value: Value) -> int:
    text = quantity(value)
    return int(quantity_bytes(text) // 2**20)


#: The longest duration: a certificate or token valid for longer would end after the year
#: 9999, which neither X.509 dates nor Python's datetime can express.
MAX_DURATION = "1000y"


def duration_seconds(value: Value) -> int:
    m = _DURATION.match(value.text)
    if not m:
        raise ValueProblem(f"`{value.text}` is not a duration",
                           "use a whole number with a unit: 30s, 5m, 12h, 90d, 10y")
    digits = m.group(1).lstrip("0") or "0"
    # Long digit strings also come from the command line (--ttl), not only the parser.
    seconds = int(digits) * _SECONDS[m.group(2)] if len(digits) <= 18 else float("inf")
    if seconds > 1000 * _SECONDS["y"]:
        raise ValueProblem(f"`{value.text}` is longer than {MAX_DURATION}",
                           f"durations are at most {MAX_DURATION} (certificates cannot end "
                           "after the year 9999)")
    return int(seconds)


def duration_days(value: Value) -> int:
    seconds = duration_seconds(value)
    if seconds < 86400:
        raise ValueProblem(f"`{value.text}` is shorter than a day", "use days or years, e.g. 365d, 10y")
    return seconds // 86400


def percent(value: Value) -> int:
    number = int(value.text.rstrip("%"))
    if not 1 <= number <= 100:
        raise ValueProblem(f"`{value.text}` is not between 1% and 100%")
    return number


def int_or_percent(value: Value) -> int | str:
    if value.kind == "PERCENT":
        number = int(value.text.rstrip("%"))
        if number > 100:
            raise ValueProblem(f"`{value.text}` is more than 100%")
        return value.text
    return int(value.text)


def port_number(value: Value) -> int:
    number = int(value.text)
    if not 1 <= number <= 65535:
        raise ValueProblem(f"port {number} is out of range", "ports are 1 to 65535")
    return number


#: RFC 5280 ub-common-name: a certificate's CN holds at most 64 characters.
CERT_CN_MAX = 64
#: The kubelet's client certificate is ``CN=system:node:<node name>``.
NODE_NAME_MAX = CERT_CN_MAX - len("system:node:")


def a_label(name: str) -> str | None:
    """``name`` with every non-ASCII label as its IDNA A-label (``xn--...``), or None when
    that is not a valid DNS name. Labels are lower-cased and NFC-normalised first, as
    UTS #46 does; this is a hint for a person, not a full IDNA 2008 validation."""
    import unicodedata

    labels = []
    for label in unicodedata.normalize("NFC", name.lower()).split("."):
        if not label.isascii():
            try:
                label = "xn--" + label.encode("punycode").decode("ascii")
            except UnicodeError:
                return None
        labels.append(label)
    out = ".".join(labels)
    return out if is_dns_subdomain(out.removeprefix("*.")) else None


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


def is_env_name(name: str) -> bool:
    return bool(_ENV_NAME.match(name))


def is_config_key(name: str) -> bool:
    return len(name) <= 253 and bool(_CONFIG_KEY.match(name))


def is_port_name(name: str) -> bool:
    return len(name) <= 15 and bool(_IANA_SVC_NAME.match(name)) and "--" not in name \
        and any(c.isalpha() for c in name)


def label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns_subdomain(prefix):
        return f"label prefix `{prefix}` is not a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return f"`{key}` is not a valid label key"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return f"`{value}` is not a valid label value (63 characters of A-Z a-z 0-9 - _ .)"
    return None


def dns_hint(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "name"
    return f"names are lower-case letters, digits and '-' (e.g. `{fixed}`)"
