"""Generated hostile inputs, class by class: each ends in kubeforge's own error, and every
diagnostic points at a real place in a file, with no line a message could forge.

``test_fuzz.py`` mutates and shuffles real sources; this module generates the classes of
input that once crashed the compiler: huge numbers, long durations, non-ASCII and over-long
names, deep nesting, paths that are not files, malformed inventories, line-break and control
characters, damaged state files and unusable output directories.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kubeforge.compiler.build import compile_file
from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError, source_lines
from kubeforge.dsl.formatter import format_source
from kubeforge.errors import KubeforgeError

CLUSTER = """cluster lab {
  kubernetes "1.37.2"
  pki { algorithm ecdsa-p256 }
  node cp1 { address 192.168.56.11  role control-plane worker }
}
"""
WORKLOAD = 'namespace a {{ deployment w {{ image "x"  port http 80  {} }} }}\n'
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SLOW = settings(FAST, max_examples=15)  # each example compiles (certificates, files)
HEAD = re.compile(r"^[^\n|]+?:\d+:\d+: (error|warning)\[[EW]\d{3}\]: ", re.M)
_DIR = Path(tempfile.mkdtemp(prefix="kf-fuzz-hostile-"))


def _fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(dir=_DIR))


def _write(text: str, where: Path | None = None) -> Path:
    where = where or _fresh_dir()
    path = where / "main.kf"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _outcome(run) -> KubeforgeError | None:
    """Run; any exception but kubeforge's own fails the property. Diagnostics must name a
    line that exists, quote it as the parser numbered it, and render one head each."""
    try:
        run()
    except DiagnosticError as err:
        rendered = err.render()
        assert len(HEAD.findall(rendered)) == len(err.diagnostics), rendered
        for d in err.diagnostics:
            assert d.span.line >= 1 and d.span.col >= 1, d
            text = err.sources.texts.get(d.span.file) if err.sources else None
            if text is not None:
                lines = source_lines(text)
                assert d.span.line <= max(len(lines), 1), d
                assert err.sources.line(d.span.file, d.span.line) == \
                    (lines[d.span.line - 1] if lines else "")
        return err
    except KubeforgeError as err:
        assert "\n" not in str(err).strip(), str(err)  # one line, no traceback
        return err
    return None


def _check(text: str, where: Path | None = None) -> KubeforgeError | None:
    path = _write(text, where)
    return _outcome(lambda: load_program(path))


# ------------------------------------------------------------------------------ numbers

NUMBER_SLOTS = [
    CLUSTER + WORKLOAD.format("replicas {}"),
    CLUSTER + WORKLOAD.format("port web {}"),
    CLUSTER + WORKLOAD.format("rollout {{ history {} }}"),
    CLUSTER + WORKLOAD.format("resources {{ memory {}Mi  cpu {}m }}"),
    CLUSTER + WORKLOAD.format("autoscale 1..{} cpu {}%"),
    CLUSTER + WORKLOAD.format("security {{ run_as_user {} }}"),
    CLUSTER + WORKLOAD.format("probe http \"/\" port http {{ failures {} }}"),
    CLUSTER + 'namespace a { deployment w { image "x"  port http 80 }\n'
              "  service w -> w type NodePort port 80 nodeport {} }\n",
    CLUSTER.replace("worker }", "worker  cpus {} }"),
    CLUSTER.replace("pki {", "loadbalancer kube-vip { vip 192.168.56.100  interface \"e\"  "
                    "router_id {} }\n  pki {"),
]


@FAST
@given(st.sampled_from(NUMBER_SLOTS), st.text("0123456789", min_size=1, max_size=6000))
def test_numbers_of_any_length(slot, digits):
    err = _check(slot.replace("{}", digits).replace("{{", "{").replace("}}", "}"))
    if len(digits.lstrip("0")) > 18:
        assert isinstance(err, DiagnosticError) and "too large" in err.render()


# ------------------------------------------------------------------------------ durations

DURATION_SLOTS = [
    CLUSTER.replace("ecdsa-p256 }", "ecdsa-p256  ca_validity {} }"),
    CLUSTER.replace("ecdsa-p256 }", "ecdsa-p256  cert_validity {} }"),
    CLUSTER.replace("  pki", "  token_ttl {}\n  pki"),
    CLUSTER + "user alice {{ groups dev  cert_validity {} }}\n",
    CLUSTER + WORKLOAD.format("grace {}"),
]
_STATE = _DIR / "state"  # shared: CAs are made once, leaves re-issued as validities change


@SLOW
@given(st.sampled_from(DURATION_SLOTS), st.integers(0, 10**24),
       st.sampled_from(["ms", "s", "m", "h", "d", "w", "y"]))
def test_durations_of_any_length_compile_or_are_refused(slot, number, unit):
    path = _write(slot.replace("{}", f"{number}{unit}").replace("{{", "{").replace("}}", "}"))
    _outcome(lambda: compile_file(path, path.parent / "build", state_dir=_STATE))


# ------------------------------------------------------------------------------ names

def _kf_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@SLOW
@given(st.one_of(
    st.text(min_size=1, max_size=80).map(lambda s: ("san", s)),
    st.text(string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=300)
      .map(lambda s: ("node", s)),
    st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=300)
      .map(lambda s: ("user", s))))
def test_names_in_certificates(kind_and_name):
    kind, name = kind_and_name
    if kind == "san":
        source = CLUSTER.replace("ecdsa-p256 }", f"ecdsa-p256  san {_kf_string(name)} }}")
    elif kind == "node":
        assume(name[0].isalnum())
        source = CLUSTER.replace("node cp1", f"node {name}")
    else:
        assume(name[0].isalpha() or name[0] == "_")
        source = CLUSTER + f"user {name} {{ groups dev }}\n"
    path = _write(source)
    err = _outcome(lambda: compile_file(path, path.parent / "build", state_dir=_STATE))
    if kind == "user" and len(name) > 64 or kind == "node" and len(name) > 52:
        assert isinstance(err, DiagnosticError) and "E103" in err.render()
    if kind == "san" and not name.isascii():
        assert isinstance(err, DiagnosticError) and "E105" in err.render()


# ------------------------------------------------------------------------------ nesting

@FAST
@given(st.integers(1, 1500), st.sampled_from(["limits", "bogus"]))
def test_nesting_of_any_depth(depth, word):
    blocks = f"{{ {word} " * depth + "{}" + " }" * depth
    text = CLUSTER + f'namespace a {{ deployment w {{ image "x" resources {blocks} }} }}\n'
    err = _check(text)
    if depth > 29 and word == "limits":
        assert isinstance(err, DiagnosticError) and "nested more than" in err.render()
    _outcome(lambda: format_source(text))


# ------------------------------------------------------------------------------ paths

PATH_SLOTS = [
    'import "{}"\n' + CLUSTER,
    CLUSTER + 'namespace a {{ config c {{ k from file "{}" }} }}\n',
    CLUSTER + 'namespace a {{ secret s {{ k from file "{}" }} }}\n',
    CLUSTER.replace("  pki", '  install bundle path "{}"\n  pki'),
    CLUSTER + WORKLOAD.format('patch from file "{}"'),
    CLUSTER + WORKLOAD.format('command "sh" from file "{}"'),
    'cluster lab {{\n  kubernetes "1.37.2"\n  nodes from "{}"\n}}\n',
]


def _make_path(kind: str, size: int, where: Path) -> str:
    if kind == "long-name":
        return "a" * size
    if kind == "long-path":
        return "/".join(["d" * 200] * (size // 100 + 21))  # past PATH_MAX (4096)
    if kind == "loop":
        (where / "l1").symlink_to("l2")
        (where / "l2").symlink_to("l1")
        return "l1"
    if kind == "dir":
        (where / "adir").mkdir()
        return "adir"
    if kind == "fifo":
        os.mkfifo(where / "fifo")
        return "fifo"
    if kind == "not-utf8":
        (where / "bytes").write_bytes(bytes(range(256)) * (size // 256 + 1))
        return "bytes"
    if kind == "below-a-file":
        (where / "afile").write_text("x")
        return "afile/x"
    return {"devnull": "/dev/null", "devzero": "/dev/zero", "missing": "missing"}[kind]


@FAST
@given(st.sampled_from(PATH_SLOTS), st.sampled_from(
    ["long-name", "long-path", "loop", "dir", "fifo", "not-utf8", "below-a-file", "devnull",
     "devzero", "missing"]), st.integers(256, 5000))
def test_paths_that_are_not_readable_files(slot, kind, size):
    where = _fresh_dir()
    path = _make_path(kind, size, where)
    text = slot.replace("{}", path).replace("{{", "{").replace("}}", "}")
    if "bundle" in slot:  # checked whole when compiling
        main = _write(text, where)
        err = _outcome(lambda: compile_file(main, where / "build", state_dir=where / "state"))
    else:
        err = _check(text, where)
    if kind != "not-utf8" or "secret" not in slot:  # a secret may hold any bytes
        assert isinstance(err, DiagnosticError), err


# ------------------------------------------------------------------------------ inventories

_KEYS = ["all", "hosts", "children", "vars", "control_plane", "workers", "etcd", "cp1",
         "ansible_host", "ansible_user", "kubeforge_labels", "kubeforge_cpus", "zone"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**70), st.floats(),
                     st.sampled_from(["192.168.56.11", "10.0.0.1", "x", ""]), st.text(max_size=8))
_YAML = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.integers(0, 3)), inner, max_size=4)),
    max_leaves=25)


@FAST
@given(st.one_of(_YAML.map(lambda body: yaml.safe_dump({"all": body}).encode()),
                 _YAML.map(lambda doc: yaml.safe_dump(doc).encode()),
                 st.binary(max_size=200)))
def test_inventories_of_any_shape(inventory):
    where = _fresh_dir()
    (where / "inv.yaml").write_bytes(inventory)
    _check('cluster lab {\n  kubernetes "1.37.2"\n  nodes from "inv.yaml"\n}\n', where)


# ------------------------------------------------------------------------------ characters

ODD = ["\f", "\v", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x1c", "\x1e", "\x00", "\x1b[2J",
       "\ufeff", "\u202e", "\t"]


@FAST
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(ODD)), min_size=1, max_size=6),
       st.booleans())
def test_line_breaks_and_control_characters_anywhere(inserts, bogus):
    text = "# a comment\n" + CLUSTER.replace("  pki", '  bogus 3\n  pki' if bogus else "  pki") \
        + 'namespace a { config c { k = "value" } }\n'
    for pos, ch in inserts:
        pos %= len(text) + 1
        text = text[:pos] + ch + text[pos:]
    _check(text)
    _outcome(lambda: format_source(text))


# ------------------------------------------------------------------------------ state files

_GOOD_STATE = _DIR / "good-state"


def _good_state() -> Path:
    if not _GOOD_STATE.exists():
        path = _write(CLUSTER + "user alice { groups dev }\n", _DIR)
        compile_file(path, _DIR / "good-build", state_dir=_GOOD_STATE)
    return _GOOD_STATE


@SLOW
@given(st.data())
def test_state_files_with_one_character_changed(data):
    good = _good_state()
    pems = sorted(p.relative_to(good) for p in good.rglob("*") if p.suffix in (".crt", ".key"))
    rel = data.draw(st.sampled_from(pems))
    state = _fresh_dir() / "state"
    shutil.copytree(good, state)
    text = (state / rel).read_text()
    body = [i for i, c in enumerate(text) if c not in "\n" and "-" not in
            text[text.rfind("\n", 0, i) + 1:text.find("\n", i)]]
    i = data.draw(st.sampled_from(body))
    c = data.draw(st.sampled_from([x for x in string.ascii_letters + string.digits + "+/="
                                   if x != text[i]]))
    (state / rel).write_text(text[:i] + c + text[i + 1:])
    path = _write(CLUSTER + "user alice { groups dev }\n")
    _outcome(lambda: compile_file(path, path.parent / "build", state_dir=state))


# ------------------------------------------------------------------------------ output

@SLOW
@given(st.lists(st.sampled_from(["b", "lab", "nodes", "cp1", "files.json", "x"]),
                min_size=1, max_size=4), st.integers(0, 4),
       st.sampled_from(["file", "dir-not-ours", "proc"]))
def test_output_directories_in_the_way(parts, at, kind):
    where = _fresh_dir()
    out = where.joinpath(*parts)
    if kind == "proc":
        out = Path("/proc/kubeforge-fuzz").joinpath(*parts)
    else:
        blocker = where.joinpath(*parts[:at + 1]) if at < len(parts) else out / "lab"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            blocker.write_text("in the way\n")
        else:
            (blocker / "not-ours").mkdir(parents=True, exist_ok=True)
    path = _write(CLUSTER)
    _outcome(lambda: compile_file(path, out, state_dir=_STATE))
