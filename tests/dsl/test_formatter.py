"""`kubeforge fmt`: canonical, idempotent, meaning-preserving, comment-keeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeforge.dsl.ast import Node
from kubeforge.dsl.formatter import format_source
from kubeforge.dsl.parser import parse
from tests.conftest import EXAMPLES
from tests.dsl.test_grammar import CASES


def shape(node):
    """The AST without positions."""
    if isinstance(node, Node):
        return (node.kind, tuple(shape(a) for a in node.args),
                None if node.body is None else tuple(shape(b) for b in node.body))
    return (node.kind, node.py if node.kind == "STRING" else node.text)


def same_meaning(a: str, b: str) -> bool:
    return [shape(i) for i in parse(a).items] == [shape(i) for i in parse(b).items]


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.kf"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_are_formatted(path: Path):
    text = path.read_text()
    assert format_source(text) == text, f"run `kubeforge fmt -w {path}`"


@pytest.mark.parametrize("rule", sorted(CASES))
def test_idempotent_and_meaning_preserving(rule):
    once = format_source(CASES[rule])
    assert format_source(once) == once
    assert same_meaning(CASES[rule], once)


def test_canonical_layout():
    ugly = ('namespace   shop{deployment web{image "nginx" replicas 3\n\n\n'
            'resources{cpu 100m memory 64Mi}}}')
    assert format_source(ugly) == (
        "namespace shop {\n"
        "  deployment web {\n"
        '    image "nginx"\n'
        "    replicas 3\n"
        "\n"
        "    resources { cpu 100m  memory 64Mi }\n"
        "  }\n"
        "}\n")


def test_comments_survive():
    text = ("# header\n\ncluster lab { # trailing brace\n"
            '  kubernetes "1.37.2" # version\n'
            "  # before node\n"
            "  node cp1 { address 10.0.0.1 }\n"
            "  # dangling at end of block\n"
            "}\n# footer\n")
    out = format_source(text)
    for comment in ("# header", "# trailing brace", "# version", "# before node",
                    "# dangling at end of block", "# footer"):
        assert comment in out
    assert '  kubernetes "1.37.2"  # version\n' in out
    assert format_source(out) == out


def test_long_inline_block_is_expanded():
    text = 'namespace a { config c { A = "' + "x" * 80 + '"  B = "y" } }'
    out = format_source(text)
    assert '    A = "' in out and format_source(out) == out


def test_empty_input():
    assert format_source("") == ""
    assert format_source("# only a comment\n") == "# only a comment\n"


def test_round2_constructs_keep_comments_and_are_idempotent():
    text = ('namespace a {  # ns\n'
            '  deployment w {\n'
            '    image "x"\n'
            '    # placement\n'
            '    affinity pods {app="db"   tier in "a" "b"} by "zone" weight 5  # near the db\n'
            '    topology_spread by "zone" max_skew 2 soft pods { app = "w" }\n'
            '    lifecycle { pre_stop exec "drain"  post_start sleep 2s }  # hooks\n'
            '    mount data at "/d" subpath "x" readonly\n'
            '    patch """\n'
            '          spec:\n'
            '            paused: true\n'
            '       """  # pause it\n'
            '  }\n'
            '  networkpolicy p { pods {}  allow from { x = "y" } in namespaces {} ip 10.0.0.0/8 '
            'except 10.1.0.0/16 }\n'
            '}\n'
            'user ana@example.com { groups "oidc:devs"  bind system:monitoring cluster-wide }\n')
    once = format_source(text)
    assert format_source(once) == once
    assert same_meaning(text, once)
    for comment in ("# ns", "# placement", "# near the db", "# hooks", "# pause it"):
        assert comment in once
    assert '    affinity pods { app = "db"  tier in "a" "b" } by "zone" weight 5  # near the db\n' \
        in once
    # the block string moves one step inside its statement; its value does not change
    assert '    patch """\n      spec:\n        paused: true\n    """  # pause it\n' in once


def test_block_string_with_text_on_the_quote_lines_is_kept_verbatim():
    text = 'namespace a { config c { A = """first\n   second"""  B = "x" } }\n'
    once = format_source(text)
    assert 'A = """first\n   second"""' in once and format_source(once) == once
    assert same_meaning(text, once)
