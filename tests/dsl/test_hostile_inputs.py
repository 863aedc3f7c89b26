"""Inputs that used to crash the compiler (exit 3) are diagnostics at their place (exit 1).

Every case goes through the command line from source text, as a user would meet it;
``test_fuzz.py`` generates more of each class.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from click.testing import CliRunner

from kubeforge.cli import main

CLUSTER = """cluster lab {
  kubernetes "1.37.2"
  pki { algorithm ecdsa-p256 }
  node cp1 { address 192.168.56.11  role control-plane worker }
}
"""
# A diagnostic's first line; quoted source lines start with "LINE | " instead.
HEAD = re.compile(r"^(?P<file>[^\n|]+?):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>E\d{3})\]: ",
                  re.M)
BIG = "9" * 5000


def cli(*args, cwd=None):
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)


def diagnose(tmp_path, source: str, name: str = "main.kf", command: str = "check"):
    """Run ``command`` on ``source``: exit 1 with exactly located diagnostics, no traceback;
    the diagnostics as (line, col, code, rest of the head line), in order."""
    path = tmp_path / name
    path.write_text(source, encoding="utf-8", newline="")
    args = [command, name] + (["-o", "build", "--state-dir", "state"] if command == "compile"
                              else [])
    result = cli(*args, cwd=tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    found = [(int(m["line"]), int(m["col"]), m["code"],
              result.output[m.end():].split("\n", 1)[0]) for m in HEAD.finditer(result.output)]
    assert found, result.output
    return found


# ------------------------------------------------------------------------------ numbers

@pytest.mark.parametrize("where", [
    "namespace a {{ deployment w {{ image \"x\"  replicas {n} }} }}",
    "namespace a {{ deployment w {{ image \"x\"  port {n} }} }}",
    "namespace a {{ deployment w {{ image \"x\"  port http 80 }}\n"
    "  service w -> w type NodePort port 80 nodeport {n} }}",
    "namespace a {{ deployment w {{ image \"x\"  rollout {{ history {n} }} }} }}",
    "namespace a {{ deployment w {{ image \"x\"  resources {{ memory {n}Mi }} }} }}",
    "namespace a {{ deployment w {{ image \"x\"  autoscale 1..{n} cpu 80% }} }}",
])
def test_numbers_of_thousands_of_digits(tmp_path, where):
    source = CLUSTER + where.format(n=BIG) + "\n"
    [(line, col, code, message)] = diagnose(tmp_path, source)
    assert code == "E105" and "is too large (5000 digits)" in message
    assert line == 6 + where.count("\n") and BIG not in message


def test_node_cpus_of_thousands_of_digits(tmp_path):
    source = CLUSTER.replace("worker }", f"worker  cpus {BIG} }}")
    [(line, col, code, message)] = diagnose(tmp_path, source)
    assert (line, code) == (4, "E105") and "too large" in message


@pytest.mark.parametrize("clause, line", [
    ("pki {{ algorithm ecdsa-p256  ca_validity {v} }}", 3),
    ("pki {{ algorithm ecdsa-p256  cert_validity {v} }}", 3),
    ("token_ttl {v}\n  pki {{ algorithm ecdsa-p256 }}", 3),
])
@pytest.mark.parametrize("value", ["10000y", "3650001d", "8760001h"])
def test_validities_past_year_9999(tmp_path, clause, line, value):
    source = CLUSTER.replace("pki { algorithm ecdsa-p256 }", clause.format(v=value))
    found = diagnose(tmp_path, source, command="compile")
    assert (line, "E106") in [(f[0], f[2]) for f in found]
    assert any(f"`{value}` is longer than 1000y" in f[3] for f in found)


def test_user_certificate_validity_past_year_9999(tmp_path):
    source = CLUSTER + "user alice { cert_validity 10000y }\n"
    assert diagnose(tmp_path, source, command="compile") == [
        (6, 28, "E106", "`10000y` is longer than 1000y")]


def test_kubeconfig_ttl_of_many_digits_is_a_usage_error(tmp_path):
    (tmp_path / "main.kf").write_text(CLUSTER + "user alice { groups dev }\n")
    result = cli("kubeconfig", "user", "main.kf", "alice", "--ttl", BIG[:40] + "y", cwd=tmp_path)
    assert result.exit_code == 2 and "is longer than 1000y" in result.output


# ------------------------------------------------------------------------------ certificates

def test_non_ascii_san_is_refused_with_its_a_label(tmp_path):
    source = CLUSTER.replace("ecdsa-p256 }", 'ecdsa-p256  san "bücher.example" "Straße.de" }')
    found = diagnose(tmp_path, source, command="compile")
    assert [(f[0], f[1], f[3]) for f in found] == [
        (3, 35, "SAN `bücher.example` is not an ASCII DNS name"),
        (3, 52, "SAN `Straße.de` is not an ASCII DNS name")]
    result = cli("check", "main.kf", cwd=tmp_path)
    assert "write `xn--bcher-kva.example`" in result.output
    assert "write `xn--strae-oqa.de`" in result.output  # IDNA 2008 keeps ß


def test_san_that_is_neither_ip_nor_dns_name(tmp_path):
    source = CLUSTER.replace("ecdsa-p256 }", 'ecdsa-p256  san "a b" "*.ok.example" 10.0.0.9 }')
    assert diagnose(tmp_path, source) == [
        (3, 35, "E105", "SAN `a b` is neither an IP address nor a DNS name")]


def test_node_name_too_long_for_the_kubelet_certificate(tmp_path):
    name = "n" * 53
    source = CLUSTER.replace("node cp1", f"node {name}")
    [(line, col, code, message)] = diagnose(tmp_path, source, command="compile")
    assert (line, col, code) == (4, 8, "E103")
    assert message == f"node name `{name}` is longer than 52 characters"
    fine = tmp_path / "fine"
    fine.mkdir()
    (fine / "main.kf").write_text(CLUSTER.replace("node cp1", "node " + "n" * 52))
    assert cli("compile", "main.kf", "-o", "b", "--state-dir", "s", cwd=fine).exit_code == 0


def test_user_name_too_long_for_a_certificate(tmp_path):
    name = "u" * 65
    source = CLUSTER + f"user {name} {{ groups dev }}\n"
    assert diagnose(tmp_path, source, command="compile") == [
        (6, 6, "E103", f"user name `{name}` is longer than 64 characters")]


# ------------------------------------------------------------------------------ nesting

@pytest.mark.parametrize("depth", [33, 3000])
@pytest.mark.parametrize("command", ["check", "fmt"])
def test_deeply_nested_blocks(tmp_path, depth, command):
    blocks = "{ limits " * depth + "{}" + " }" * depth
    source = CLUSTER + f'namespace a {{ deployment w {{ image "x" resources {blocks} }} }}\n'
    [(line, col, code, message)] = diagnose(tmp_path, source, command=command)
    assert (line, code, message) == (6, "E002", "blocks are nested more than 32 deep")


# ------------------------------------------------------------------------------ paths

LONG = "a" * 300  # longer than NAME_MAX (255) of every common file system
PATH_SLOTS = {  # source with @P@ for the path, where the diagnostic is, its message
    "import": ('import "@P@"\n' + CLUSTER, 1, 1, "E004", "imported file `@P@` @W@"),
    "config": (CLUSTER + 'namespace a { config c { k from file "@P@" } }\n', 6, 38,
               "E117", "file `@P@` @W@"),
    "secret": (CLUSTER + 'namespace a { secret s { k from file "@P@" } }\n', 6, 38,
               "E117", "file `@P@` @W@"),
    "patch": (CLUSTER + 'namespace a { config c { k = "v"  patch from file "@P@" } }\n', 6, 51,
              "E117", "file `@P@` @W@"),
    # A bundle is checked whole when compiling (compiler/emit/bundle.py), at its `path`.
    "bundle": (CLUSTER.replace("  pki", '  install bundle path "@P@"\n  pki'), 3, 18,
               "E150", "install bundle: @P@ @W@"),
}


def _paths(tmp_path):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    return {
        LONG: "is a name too long for the file system",
        "loop1": "is a symbolic link loop",
        "missing": "does not exist",
        "afile/below": "does not exist (a parent of it is not a directory)",
    }


@pytest.mark.parametrize("slot", sorted(PATH_SLOTS))
def test_paths_that_are_not_files(tmp_path, slot):
    template, line, col, code, message = PATH_SLOTS[slot]
    cases = _paths(tmp_path)
    cases["adir" if slot != "bundle" else "afile"] = (
        "is a directory, not a regular file" if slot != "bundle"
        else "is a regular file, not a directory")
    if slot != "bundle":
        cases["/dev/null"] = "is a character device, not a regular file"
    for path, what in cases.items():
        found = diagnose(tmp_path, template.replace("@P@", path),
                         command="compile" if slot == "bundle" else "check")
        expected = message.replace("@P@", path).replace("@W@", what)
        assert (line, col, code, expected) in found, (path, found)


def test_inventory_paths_that_are_not_files(tmp_path):
    # (A directory is an inventory too: Ansible reads every file in it.)
    for path, what in {**_paths(tmp_path),
                       "/dev/zero": "is a character device, not a regular file"}.items():
        source = CLUSTER.replace("  node cp1 { address 192.168.56.11  role control-plane "
                                 "worker }", f'  nodes from "{path}"')
        [(line, col, code, message)] = diagnose(tmp_path, source)
        assert (line, col, code) == (4, 14, "E118")
        assert message.endswith(f"inventory `{tmp_path / path}` {what}") or \
            message.endswith(f"inventory `{path}` {what}"), message


def test_symlink_loop_as_file_is_a_usage_error(tmp_path):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    for command in ("check", "compile", "fmt"):
        result = cli(command, "loop1", cwd=tmp_path)
        assert result.exit_code == 2, result.output
        assert result.output == "loop1: is a symbolic link loop\n"


def test_config_file_not_utf8_or_unreadable(tmp_path):
    data = "ok\nprix: 10 \xa4\n".encode("latin-1")
    (tmp_path / "latin1.txt").write_bytes(data)
    source = CLUSTER + 'namespace a { config c { k from file "latin1.txt" } }\n'
    assert diagnose(tmp_path, source) == [(6, 38, "E117", "file `latin1.txt` is not UTF-8 text "
                                           f"(invalid start byte at line 2, byte {data.index(0xa4)})")]
    if os.path.exists("/proc/self/mem"):  # a regular file whose read fails (EIO)
        source = CLUSTER + 'namespace a { config c { k from file "/proc/self/mem" } }\n'
        [(line, col, code, message)] = diagnose(tmp_path, source)
        assert message.startswith("file `/proc/self/mem` cannot be read (")


def test_secret_from_devices_and_large_files_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big").write_bytes(b"x" * ((1 << 20) + 1))
    cases = {"/dev/zero": (38, "is a character device, not a regular file"),
             "fifo": (38, "is a named pipe, not a regular file"),
             "big": (26, "is larger than 1 MiB")}  # found while reading: at the entry
    if not stat.S_ISREG(os.stat("/dev/stdin").st_mode):  # stdin redirected from a file is one
        cases["/dev/stdin"] = (38, None)
    for path, (col, what) in cases.items():
        source = CLUSTER + f'namespace a {{ secret s {{ k from file "{path}" }} }}\n'
        [found] = diagnose(tmp_path, source, command="compile")
        assert found[:3] == (6, col, "E117"), found
        assert found[3].startswith(f"file `{path}` is ")
        assert what is None or found[3] == f"file `{path}` {what}"


def test_private_key_in_a_config_warns(tmp_path):
    label = " ".join(("RSA", "PRIVATE", "KEY"))  # no key header in any committed file
    (tmp_path / "id.pem").write_text(f"-----BEGIN {label}-----\nMIIB\n-----END {label}-----\n")
    (tmp_path / "main.kf").write_text(
        CLUSTER + 'namespace a { config c { key from file "id.pem" } }\n')
    result = cli("check", "main.kf", cwd=tmp_path)
    assert result.exit_code == 0
    assert "main.kf:6:40: warning[W110]: file `id.pem` holds a private key" in result.output
    assert 'put it in a secret: `secret NAME { key from file "id.pem" }`' in result.output
    assert cli("check", "--strict", "main.kf", cwd=tmp_path).exit_code == 1


# ------------------------------------------------------------------------------ inventories

INVENTORIES = {  # file name, content, line, message
    "hosts-list": ("inv.yaml", "all:\n  hosts:\n    - cp1\n", 2,
                   "`hosts` of group `all` must be a mapping, not a list"),
    "children-list": ("inv.yaml", "all:\n  children:\n    - control_plane\n", 2,
                      "`children` of group `all` must be a mapping, not a list"),
    "vars-list": ("inv.yaml", "all:\n  vars: [a]\n", 2,
                  "`vars` of group `all` must be a mapping, not a list"),
    "labels-list": ("inv.yaml", "all:\n  children:\n    control_plane:\n      hosts:\n"
                    "        cp1:\n          ansible_host: 192.168.56.11\n"
                    "          kubeforge_labels: [a, b]\n", 7,
                    "host `cp1`: kubeforge_labels must map label keys to values"),
    "labels-ini": ("inv.ini", "[control_plane]\n"
                   "cp1 ansible_host=192.168.56.11 kubeforge_labels='[a]'\n", 2,
                   "host `cp1`: kubeforge_labels must map label keys to values"),
    "yaml-error": ("inv.yaml", "all:\n  children:\n    control_plane: {hosts: {cp1: {}}\n", 4,
                   "`inv.yaml` is not valid YAML: expected ',' or '}', but got '<stream end>'"),
}


@pytest.mark.parametrize("case", sorted(INVENTORIES))
def test_malformed_inventories(tmp_path, case):
    name, text, line, message = INVENTORIES[case]
    (tmp_path / name).write_text(text)
    source = CLUSTER.replace("  node cp1 { address 192.168.56.11  role control-plane worker }",
                             f'  nodes from "{name}"')
    [(at_line, col, code, got)] = diagnose(tmp_path, source)
    assert (at_line, col, code) == (4, 14, "E118")
    assert got == f"{name}:{line}: {message}"


def test_inventory_not_utf8(tmp_path):
    data = b"all:\n  hosts:\n    cp\xff1: {}\n"
    (tmp_path / "inv.yaml").write_bytes(data)
    source = CLUSTER.replace("  node cp1 { address 192.168.56.11  role control-plane worker }",
                             '  nodes from "inv.yaml"')
    [(_, _, code, message)] = diagnose(tmp_path, source)
    assert message == ("inv.yaml:3: `inv.yaml` is not UTF-8 text (invalid start byte at "
                       f"line 3, byte {data.index(0xff)})")


def test_inventory_host_names_must_be_node_names(tmp_path):
    (tmp_path / "inv").write_text("all:\n  children:\n    control_plane:\n      hosts:\n"
                                  "        bücher: {ansible_host: 192.168.56.11}\n")
    source = CLUSTER.replace("  node cp1 { address 192.168.56.11  role control-plane worker }",
                             '  nodes from "inv"')
    [(line, col, code, message)] = diagnose(tmp_path, source)
    assert (line, col, code) == (4, 14, "E118")
    assert message.startswith("inv:5: host name `bücher` is not a valid node name")


def test_yaml_errors_are_one_line_at_their_place(tmp_path):
    """PyYAML's text spans lines; a refused control character has no mark, only an offset."""
    (tmp_path / "p.yaml").write_bytes(b'spec:\n  x: "\x00"\n')
    source = CLUSTER + 'namespace a { deployment w { image "x"  patch from file "p.yaml" } }\n'
    assert diagnose(tmp_path, source) == [(2, 7, "E130", "the patch of deployment `w` is not "
                                           "valid YAML: unacceptable character #x0000: special "
                                           "characters are not allowed")]


# ------------------------------------------------------------------------------ carets

BREAKS = ["\f", "\v", "\u2028", "\u2029", "\x85", "\x1c", "\r"]


@pytest.mark.parametrize("brk, where", [(b, w) for b in BREAKS for w in ("comment", "string")]
                         + [("\f", "blank"), ("\r", "blank")])  # the grammar's blank space
def test_unusual_line_breaks_do_not_move_the_caret(tmp_path, brk, where):
    head = {"comment": f"# a comment {brk} that goes on\n",
            "string": f'namespace x {{ config c {{ k = "a{brk}b" }} }}\n',
            "blank": f"{brk}\n"}[where]
    source = head + CLUSTER.replace("  pki", "  bogus 3\n  pki")
    [(line, col, code, message)] = diagnose(tmp_path, source)
    assert (line, col, code) == (4, 3, "E001")
    result = cli("check", "main.kf", cwd=tmp_path)
    assert "4 |   bogus 3\n      ^^^^^\n" in result.output


def test_a_lone_cr_does_not_end_a_comment(tmp_path):
    source = "# note\rbogus 3\n" + CLUSTER
    (tmp_path / "main.kf").write_bytes(source.encode())
    result = cli("check", "main.kf", cwd=tmp_path)
    assert result.exit_code == 0, result.output


def test_crlf_files_and_a_byte_order_mark(tmp_path):
    source = "\ufeff" + CLUSTER.replace("\n", "\r\n").replace("  pki", "  bogus 3\r\n  pki")
    (tmp_path / "main.kf").write_bytes(source.encode())
    result = cli("check", "main.kf", cwd=tmp_path)
    assert result.output.startswith("main.kf:3:3: error[E001]: unknown keyword `bogus`\n"
                                    "3 |   bogus 3\n      ^^^^^\n")
    (tmp_path / "ok.kf").write_bytes(("\ufeff" + CLUSTER.replace("\n", "\r\n")).encode())
    assert cli("check", "ok.kf", cwd=tmp_path).exit_code == 0


def test_control_characters_in_messages_cannot_forge_a_diagnostic(tmp_path):
    forged = "x.kf\\n" + "main.kf:1:1: error[E999]: forged"
    source = f'import "{forged}"\n' + CLUSTER
    found = diagnose(tmp_path, source)
    assert [(f[0], f[2]) for f in found] == [(1, "E004")]
    assert "`x.kf\\nmain.kf:1:1: error[E999]: forged` does not exist" in found[0][3]


def test_json_output_is_one_object_even_for_an_internal_error(tmp_path, monkeypatch):
    (tmp_path / "main.kf").write_text(CLUSTER)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("an injected bug")
    monkeypatch.setattr("kubeforge.compiler.lower.ProgramLowerer.lower", bug)
    for command in (["check", "--json", "main.kf"], ["compile", "main.kf", "--json"]):
        result = cli(*command, cwd=tmp_path)
        assert result.exit_code == 3
        data = json.loads(result.stdout)
        assert data == {"ok": False, "internal": True, "diagnostics": [],
                        "error": "internal error: ZeroDivisionError: an injected bug"}
        assert "Traceback" in result.stderr


def test_json_output_for_other_errors_of_any_command(tmp_path):
    result = cli("rbac", "matrix", "--json", "nope.kf", cwd=tmp_path)
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {"ok": False, "error": "nope.kf: no such file",
                                         "diagnostics": []}


def test_files_on_the_command_line_that_are_devices(tmp_path):
    (tmp_path / "main.kf").write_text(CLUSTER)
    result = cli("check", "/dev/null", cwd=tmp_path)
    assert (result.exit_code, result.output) == \
        (2, "/dev/null: is a character device, not a regular file\n")
    result = cli("plan", "main.kf", "-i", "/dev/null", cwd=tmp_path)
    assert (result.exit_code, result.output) == \
        (2, "inventory /dev/null is a character device, not a regular file\n")
