"""The Lark parser, stored whole in kubeforge's cache directory so a command starts fast.

Lark's own ``cache=True`` still rebuilds the parser from a generic serialization (a pure-Python
walk of every table) and compiles one regular expression per lexer state on first use: most
of a small file's `kubeforge check`. Here the finished parser, every state's lexer compiled,
is pickled as it is; loading it is one ``pickle.load``.

The file's name is a hash of everything the parser is made from (the grammar's text, the
options, Lark's and Python's versions), so a changed grammar gets a new file, never a stale
parser. A file that cannot be read (absent, corrupt, another user's, written by another Lark)
is rebuilt; a cache directory that cannot be written only costs the build, every time.

Compiled patterns are stored as the regular-expression engine's own program (what
``re.compile`` computes from the pattern's text, the slow part) and rebuilt with ``_sre``;
each one is checked at write time to equal ``re.compile``'s, and any pattern that does not,
or an interpreter without those internals, is stored as its text instead.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import sys
from pathlib import Path
from typing import Callable

from lark import Lark

from kubeforge import usercache

#: Part of every file's name: bump it when what is stored changes shape.
FORMAT = "1"


def cache_file(grammar: str, options: dict, kind: str = "parser") -> Path:
    import lark

    key = "\0".join([FORMAT, grammar, repr(sorted(options.items())), lark.__version__,
                     sys.version, str(_sre_magic())])
    return usercache.cache_dir() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}.pickle"


def load_parser(grammar_path: Path, **options) -> Lark:
    """The LALR parser of ``grammar_path`` with ``options``, from the cache when it is there."""
    grammar = grammar_path.read_text(encoding="utf-8")
    path = cache_file(grammar, options)
    parser = _read(path)
    if parser is None:
        # Lark's own cache still spares the table build when the user's cache is unwritable.
        parser = Lark(grammar, source_path=str(grammar_path), cache=True, **options)
        _warm(parser)
        _write(path, parser)
    return parser


def load_derived(grammar_path: Path, kind: str, made_by: str, of_type: type,
                 build: Callable[[], object | None]) -> object | None:
    """Something made from the grammar's parser (fastparse's tables), stored the same way;
    ``made_by`` is everything else it is made from (the text of the code that makes it)."""
    grammar = grammar_path.read_text(encoding="utf-8")
    path = cache_file(grammar, {"made_by": made_by}, kind)
    made = _read(path, of_type)
    if made is None:
        made = build()
        if made is not None:
            _write(path, made)
    return made


def _read(path: Path, of_type: type = Lark):
    data = usercache.read_own(path)
    if data is None:
        return None
    try:
        made = pickle.loads(data)
    except Exception:  # truncated, or from an incompatible Lark: build it again
        return None
    return made if isinstance(made, of_type) else None


def _warm(parser: Lark) -> None:
    """Compile every lexer state's scanner now, so they are stored compiled."""
    lexer = getattr(parser.parser, "lexer", None)
    for state_lexer in {*getattr(lexer, "lexers", {}).values(),
                        *filter(None, [getattr(lexer, "root_lexer", None)])}:
        getattr(state_lexer, "scanner", None)


def _write(path: Path, made: object) -> None:
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(made)
    except Exception:  # something that does not pickle: it is built on every run
        return
    usercache.write_own(path, buffer.getvalue())


# ------------------------------------------------------------------ what pickle cannot do alone
def _sre_magic() -> int:
    import _sre

    return _sre.MAGIC


def _pattern(pattern, flags, code, groups, groupindex, indexgroup) -> re.Pattern:
    import _sre

    return _sre.compile(pattern, flags, code, groups, groupindex, indexgroup)


def _lalr_action(name: str):
    """Lark's Shift and Reduce, which its parser compares by identity."""
    from lark.parsers import lalr_analysis

    return getattr(lalr_analysis, name)


def _module(name: str):
    return sys.modules.get(name) or __import__(name)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        from lark.parsers.lalr_analysis import Reduce, Shift

        if obj is re:  # the lexer keeps the `re` module it compiles with
            return _module, ("re",)
        if obj is Shift or obj is Reduce:
            return _lalr_action, (obj.name,)
        if isinstance(obj, re.Pattern):
            return _pattern_reduction(obj)
        return NotImplemented


def _pattern_reduction(compiled: re.Pattern):
    """How to rebuild ``compiled`` without parsing its text again (re._compiler.compile's own
    last step), or, when that does not give the same pattern, by compiling its text."""
    try:
        from re import _compiler, _parser

        parsed = _parser.parse(compiled.pattern, compiled.flags)
        code = [int(c) for c in _compiler._code(parsed, compiled.flags)]
        groupindex = dict(parsed.state.groupdict)
        indexgroup = [None] * parsed.state.groups
        for name, index in groupindex.items():
            indexgroup[index] = name
        args = (compiled.pattern, compiled.flags | parsed.state.flags, code,
                parsed.state.groups - 1, groupindex, tuple(indexgroup))
        if _pattern(*args) == compiled:
            return _pattern, args
    except Exception:  # another interpreter's internals: store the text
        pass
    return re.compile, (compiled.pattern, compiled.flags)
