"""What a host had before apply put kubeforge's files in place, and how reset gives it back.

Before a host's first upload, one plan step (``os-prepare/keep-originals``) records, for every
path the plan will upload there, either a copy of the file already at that path or a marker
that nothing was there. ``kubeforge reset`` then puts each copy back and removes only the
files that were not there before; a file a package installed after kubeforge's upload (apt
with ``--force-confold`` keeps ours and leaves the package's own version beside it as
``.dpkg-dist``, as for haproxy.cfg) gets the package's version back. A step in the plan, not
code in one transport, so the SSH and the ansible targets keep the same record.
"""

from __future__ import annotations

import shlex
from typing import Iterable

from kubeforge.compiler.plan import Check, Command, probe

#: 0700, root's: copies of replaced files may be keys or tokens.
ORIGINALS = "/var/lib/kubeforge/originals"
ABSENT = ".kf-absent"  # nothing was at the path
ABSENT_DIR = ".kf-absent-dir"  # in a record's directory: that directory was not there either
RESTORED = ".kf-restored"  # reset put the copy back (a re-run must not remove it again)


def _paths_heredoc(paths: Iterable[str]) -> str:
    return "<<'KF_PATHS'\n" + "\n".join(sorted(set(paths))) + "\nKF_PATHS"


def keep_step(paths: Iterable[str], store: str = ORIGINALS) -> tuple[Command, Check]:
    """The command that records the originals of ``paths`` (once per path: a later apply
    that uploads the same path again keeps the first record), and its probe. Directories
    the uploads will create are recorded as absent too, so reset removes them (when empty)."""
    paths = sorted(set(paths))
    keep = "\n".join([
        "set -e", "umask 077", f"o={shlex.quote(store)}", 'mkdir -p "$o"',
        'while IFS= read -r p; do',
        f'  k="$o$p"; [ -e "$k" ] || [ -e "$k{ABSENT}" ] && continue',
        '  d=$(dirname "$p")',
        '  while [ ! -e "$d" ]; do',
        f'    mkdir -p "$o$d" && : > "$o$d/{ABSENT_DIR}"; d=$(dirname "$d")',
        '  done',
        '  mkdir -p "$(dirname "$k")"',
        f'  if [ -e "$p" ]; then cp -a "$p" "$k"; else : > "$k{ABSENT}"; fi',
        "done " + _paths_heredoc(paths),
    ])
    kept = "\n".join([
        f"o={shlex.quote(store)}",
        'while IFS= read -r p; do',
        f'  [ -e "$o$p" ] || [ -e "$o$p{ABSENT}" ] || exit 1',
        "done " + _paths_heredoc(paths),
    ])
    return Command(shell=keep, timeout=120), probe(kept)


def restore_script(paths: Iterable[str], store: str = ORIGINALS) -> str:
    """Puts every recorded original of ``paths`` back and removes the rest of them, then
    the directories that were not there before if nothing else was put in them since; safe
    to run again after an interruption. The record itself goes only when all are done."""
    paths = sorted(set(paths))
    if not paths:
        return ""
    return "\n".join([
        f"o={shlex.quote(store)}",
        # No record at all: this reset already finished (or apply never got to upload);
        # nothing is known about the files, so none is touched.
        'if [ -d "$o" ]; then',
        'while IFS= read -r p; do',
        '  k="$o$p"',
        f'  if [ -e "$k" ]; then mv -f "$k" "$p" && : > "$k{RESTORED}"',
        f'  elif [ -e "$k{RESTORED}" ]; then :',
        '  elif [ -e "$p.dpkg-dist" ]; then mv -f "$p.dpkg-dist" "$p"',
        '  else rm -f "$p"; fi',
        "done " + _paths_heredoc(paths),
        # A directory that was not there goes with the empty ones in it (kubeadm reset
        # leaves manifests/ and pki/ empty), never with a file. find -depth empties a
        # directory's children first, so the order of the recorded ones does not matter.
        f'find "$o" -name {ABSENT_DIR} -printf \'%h\\n\' |',
        '  while IFS= read -r d; do d=${d#"$o"}',
        '    [ -d "$d" ] && find "$d" -depth -type d -empty -delete 2>/dev/null || :; done',
        'rm -rf "$o"',
        "fi",
    ])
