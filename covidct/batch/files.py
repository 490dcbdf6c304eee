"""The files of a batch folder, found without ever leaving it.

The batch contract: docs/architecture.md, "The Negin-style batch contract".

One walker for everything that reads a batch from disk (the manifest, validation's layout
check, ``covidct land``): :func:`scan_batch` lists the regular files under a batch root and
refuses every other entry with a named reason, following no link:

* a **symbolic link** (to a file or a folder, inside or outside the batch): its target is never
  read, listed or copied;
* a **hard link** (a regular file with more than one link): its bytes may belong to a file
  outside the batch, so they are not read either;
* anything that is **not a regular file or folder** (character or block device, FIFO, socket).

The root itself may be reached through a link (the caller chose it); nothing under it is.
Entries are judged with ``os.lstat``, and :func:`read_regular` opens with ``O_NOFOLLOW`` and
re-checks the opened file, so a file swapped for a link after the scan is refused too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: Reasons for refused entries (the text after the entry's relative path).
SYMLINK = "symbolic link (not followed: its target is outside the batch's custody)"
HARD_LINK = "hard link ({links} names for one file; its bytes may live outside the batch)"
SPECIAL = "not a regular file ({kind})"


@dataclass(frozen=True)
class BatchFiles:
    """What :func:`scan_batch` found under a batch root.

    ``files``: POSIX paths relative to the root of every regular file, sorted. ``refused``:
    (relative POSIX path, reason) of every other entry, sorted; a refused folder is not entered.
    """

    root: Path
    files: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]

    def path(self, relative: str) -> Path:
        """Return the local path of the batch-relative POSIX path ``relative``."""
        return self.root.joinpath(*relative.split("/"))

    def refusal_text(self, limit: int = 5) -> str:
        """Return ``"a/b (reason); c (reason)"`` for the first ``limit`` refused entries."""
        shown = "; ".join(f"{escaped(name)} ({reason})" for name, reason in self.refused[:limit])
        more = len(self.refused) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


def escaped(name: str) -> str:
    """Return ``name`` with every non-printable or non-ASCII character escaped (``ascii``)."""
    return ascii(name)[1:-1]


def entry_problem(info: os.stat_result) -> str | None:
    """Why an entry with ``os.lstat`` result ``info`` may not be read; None for a plain file
    or folder."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISDIR(mode):
        return None
    if not stat.S_ISREG(mode):
        return SPECIAL.format(kind=_kind(mode))
    if info.st_nlink > 1:
        return HARD_LINK.format(links=info.st_nlink)
    return None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return f"mode {stat.filemode(mode)}"


def scan_batch(batch_dir: str | Path) -> BatchFiles:
    """List the regular files under ``batch_dir`` and refuse every other entry (module doc).

    Raises FileNotFoundError when ``batch_dir`` is not a directory.
    """
    root = Path(batch_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"batch folder {root} does not exist")
    files: list[str] = []
    refused: list[tuple[str, str]] = []
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        with os.scandir(root / relative_dir if relative_dir else root) as entries:
            for entry in entries:
                relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
                info = entry.stat(follow_symlinks=False)
                problem = entry_problem(info)
                if problem is not None:
                    refused.append((relative, problem))
                elif stat.S_ISDIR(info.st_mode):
                    pending.append(relative)
                else:
                    files.append(relative)
    return BatchFiles(root, tuple(sorted(files)), tuple(sorted(refused)))


class FileTooLarge(OSError):
    """A file is larger than the limit its reader allows (refused before it is read)."""


def read_regular(
    path: str | Path, max_bytes: int | None = None, *, limit_of: str = "one slice"
) -> bytes:
    """Return the bytes of the regular, singly linked file ``path``, never following a link.

    ``max_bytes``: refuse larger files before reading them (:class:`FileTooLarge`, whose message
    names ``limit_of``). Raises OSError (a ``ValueError`` is not used so callers treat it as an
    I/O failure) naming the file and the reason: a link, a hard link, a special file, or a file
    over ``max_bytes``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if Path(path).is_symlink():
            raise OSError(f"{path}: {SYMLINK}") from error
        raise
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        problem = entry_problem(info)
        if problem is None and stat.S_ISDIR(info.st_mode):
            problem = "a folder, not a file"
        if problem is not None:
            raise OSError(f"{path}: {problem}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise FileTooLarge(
                f"{path}: {info.st_size:,} bytes, over the {max_bytes:,}-byte limit of {limit_of}"
            )
        return handle.read()
