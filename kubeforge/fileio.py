"""Reading the files a user names: say what a path is when it is not a usable file.

Every path kubeforge reads on a user's behalf (the source FILE, imports, `config ... from
file`, `secret ... from file`, `nodes from`, `install bundle path`) goes through here, so a
directory, a device, a FIFO, a symlink loop or a name too long for the file system becomes a
sentence ("is a directory") instead of an OSError, and nothing reads without bound
(``/dev/zero``) or waits on a pipe (``/dev/stdin``).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Kubernetes stores a ConfigMap or Secret in one etcd value of at most 1 MiB.
OBJECT_DATA_LIMIT = 1 << 20
#: Source files and inventories: far above any real one, low enough to refuse /dev/zero-like input.
TEXT_LIMIT = 16 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a regular file"),
)


class FileProblem(Exception):
    """A path that cannot be read as asked; ``str()`` is a phrase to put after the path.
    ``line`` is where in the file the problem is, when it is inside it."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _stat_problem(err: OSError) -> str:
    if err.errno == errno.ENOENT:
        return "does not exist"
    if err.errno == errno.ENOTDIR:
        return "does not exist (a parent of it is not a directory)"
    if err.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if err.errno == errno.ENAMETOOLONG:
        return "is a name too long for the file system"
    return f"cannot be read ({err.strerror or err})"


def path_problem(path: str | Path, want: str = "file") -> str | None:
    """None when ``path`` is a regular file (``want="file"``) or a directory
    (``want="dir"``); otherwise what is wrong with it, as a phrase: "is a directory",
    "does not exist", "is a symbolic link loop", ..."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        if isinstance(err, ValueError):
            return "is not a valid path (it contains a NUL character)"
        return _stat_problem(err)
    if stat.S_ISREG(mode) if want == "file" else stat.S_ISDIR(mode):
        return None
    return f"is {kind_of(mode)}, not {'a regular file' if want == 'file' else 'a directory'}"


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; FileProblem for
    anything else. The type is checked on the open descriptor, so a path swapped for a FIFO
    or a device after a check is still refused, and opening never blocks on a pipe."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except ValueError:
        raise FileProblem("is not a valid path (it contains a NUL character)") from None
    except OSError as err:
        raise FileProblem(_stat_problem(err)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileProblem(f"is {kind_of(mode)}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileProblem(f"is larger than {_size(limit)}")
        return b"".join(chunks)
    except FileProblem:
        raise
    except OSError as err:
        raise FileProblem(f"cannot be read ({err.strerror or err})") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int) -> str:
    """:func:`read_regular` decoded as UTF-8 (a leading byte-order mark is dropped)."""
    return decode_utf8(read_regular(path, limit), bom=True)


def decode_utf8(data: bytes, bom: bool = False) -> str:
    """``data`` as UTF-8 (``bom``: a leading byte-order mark dropped); FileProblem naming
    the line of the first bad byte otherwise."""
    try:
        return data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise FileProblem(f"is not UTF-8 text ({err.reason} at line {line}, byte {err.start})",
                          line) from None


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
