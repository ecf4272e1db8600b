"""Where gdbench writes, and the one rule about it: only a regular file is ever replaced or
moved aside.

Every path a command writes is checked before any work starts. Nothing there yet, or a
regular file, is fine; a directory, a device, a FIFO, a socket or a symbolic link (whatever it
points at) is left exactly as it was and the command stops with one line, as do ``-`` and an
empty name. No two outputs of one command may share a path (``check_distinct``). A file that is
moved aside goes to the first free numbered name beside it (``results.1.json``), which is never
anything but a new name.

What a command reads is checked too (``read_input``): only a regular file, of at most
``MAX_INPUT_BYTES``, is read; a FIFO, a device or a folder is one line, never a read that
blocks or grows without end.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

MAX_INPUT_BYTES = 1 << 30  # the largest file a command reads: results of a long session fit

KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def kind(path) -> str | None:
    """None for nothing or a regular file at ``path``; else what is there, in words."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OSError(f"cannot look at {path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in KINDS if test(mode)), "not a regular file")


def check_target(path, flag: str = "the output") -> Path:
    """``path`` as a Path, once it is a name a file may be written to; ValueError if not.

    The folder it goes in must exist or be makeable and writable (OSError otherwise).
    """
    text = str(path) if path is not None else ""
    if not text.strip():
        raise ValueError(f"{flag} needs a file name, got an empty one")
    if text == "-":
        raise ValueError(f"{flag} - : gdbench writes results to files, not to standard output; "
                         "give a file name")
    path = Path(text)
    what = kind(path)
    if what:
        raise ValueError(f"{flag} {path} is {what}, not a regular file: only a regular file is "
                         "ever replaced or moved aside; choose another name")
    writable_folder(path.parent, path.name)
    return path


def check_folder(folder, flag: str = "the folder") -> Path:
    """``folder`` as a Path once it is a directory, or nothing that can be made one."""
    text = str(folder) if folder is not None else ""
    if not text.strip() or text == "-":
        raise ValueError(f"{flag} needs a folder name, got {text!r}")
    folder = Path(text)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ValueError(f"{flag} {folder} is {kind(folder) or 'a file'}, not a folder")
    writable_folder(folder, "probe")
    return folder


def writable_folder(folder: Path, name: str) -> None:
    """OSError (one line) unless ``folder`` exists or can be made, and files can go in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    except OSError as exc:
        raise OSError(f"cannot write {folder / name}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def check_distinct(outputs: dict, through_partial: tuple = ("--out", "--csv")) -> None:
    """ValueError when two of a command's outputs (flag -> path, or None where not asked for)
    name the same file or folder: the second would replace the first. The outputs named in
    ``through_partial`` are written through a partial file first (``r.partial.json``), which
    may not be another output either. Checked before anything is written or measured."""
    named = {}
    for flag, path in outputs.items():
        if path is not None and str(path).strip() not in ("", "-"):  # check_target says why
            named[flag] = path
            if flag in through_partial:
                named[f"{flag}'s partial file"] = partial_path(path)
    seen: dict = {}
    for flag, path in named.items():
        where = os.path.realpath(path)
        if where in seen:
            other, given = seen[where]
            raise ValueError(f"{other} ({given}) and {flag} ({path}) are the same file: one "
                             "output would replace the other; give each its own name")
        seen[where] = (flag, path)


def read_input(path, what: str = "results file") -> str:
    """The text of the regular file at ``path`` (a link to one is followed); ValueError, one
    line, for anything else: nothing there, a folder, a FIFO, a device, a socket, a file over
    ``MAX_INPUT_BYTES`` or not UTF-8. Opened without blocking, so that a FIFO swapped in after
    a look is refused rather than waited on."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a {what}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what_is = next((words for test, words in KINDS[1:] if test(st.st_mode)),
                       "not a regular file")
        raise ValueError(f"{path} is {what_is}, not a {what}: only a regular file is read")
    if st.st_size > MAX_INPUT_BYTES:
        os.close(fd)
        raise ValueError(f"{path} holds {st.st_size / (1 << 30):.1f} GiB: larger than any "
                         f"{what} ({MAX_INPUT_BYTES >> 30} GiB at most)")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:  # it grew while read
        raise ValueError(f"{path} grew past {MAX_INPUT_BYTES >> 30} GiB while read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a {what} (not UTF-8 text: {exc.reason} at byte "
                         f"{exc.start})") from None


def partial_path(path) -> Path:
    """Where a run writes until it ends: ``results.json`` -> ``results.partial.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def numbered_path(path) -> Path:
    """The first free ``results.1.json``, ``results.2.json``, ... beside ``path``."""
    path = Path(path)
    k = 1
    while os.path.lexists(candidate := path.with_name(f"{path.stem}.{k}{path.suffix}")):
        k += 1
    return candidate


def move_aside(path) -> Path | None:
    """Rename the regular file at ``path`` to its first free numbered name; that name, or None
    when nothing is there. ValueError for anything but a regular file."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    what = kind(path)
    if what:
        raise ValueError(f"{path} is {what}: only a regular file is ever moved aside")
    kept = numbered_path(path)
    os.replace(path, kept)
    return kept


RESULTS_TOOLS = ("gdbench", "gdbench-noise", "gdbench-noise-paired", "gdbench-ab",
                 "gdbench-bisect", "gdbench-noise-coverage")


def holds_results(path) -> bool:
    """Whether ``path`` is a file gdbench reads as results: a run, converge, ab or noise file,
    or pytest-benchmark JSON."""
    path = Path(path)
    if kind(path) or not path.exists():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1)
            if head not in (b"{", b"[") and not head.isspace():
                return False
            d = json.loads(head + f.read())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and (d.get("tool") in RESULTS_TOOLS or (
        isinstance(d.get("benchmarks"), list) and "machine_info" in d))


def check_report_target(path, flag: str = "-o") -> Path:
    """A report's file: as ``check_target``, and never a file of results."""
    path = check_target(path, flag)
    if holds_results(path):
        raise ValueError(f"{flag} {path} holds gdbench results: a report never replaces them; "
                         "choose another name")
    return path
