"""Which source ran: the commit, and a hash of gdbench's files as they were.

A commit alone does not say what ran: runs made from one checkout with different uncommitted
edits would all record the same commit. So a run records, besides the commit, the paths of
gdbench's files that differ from it and a SHA-256 of those differences (the diff and the
contents of new files), and always a SHA-256 of every file of the package that ran, which
identifies the code also where there is no checkout (an installed copy).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def files_sha256(root: Path = PACKAGE) -> str:
    """SHA-256 over the package's Python files: their paths and bytes, in order."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def source(root: Path = PACKAGE) -> dict:
    """The commit of the checkout the package runs from (None if there is none), its files that
    differ from the commit, a hash of those differences, and the hash of the files that ran."""
    record = {"commit": None, "uncommitted": [], "changes_sha256": None,
              "files_sha256": files_sha256(root)}
    if not (root.parent / ".git").exists():
        return record
    try:
        top = root.parent
        commit = _git(top, "rev-parse", "HEAD").strip()
        package = root.name
        diff = _git(top, "diff", "--binary", "HEAD", "--", package)
        changed = _git(top, "diff", "--name-only", "HEAD", "--", package).split()
        untracked = _git(top, "ls-files", "--others", "--exclude-standard", "--",
                         package).split()
    except (OSError, subprocess.SubprocessError):
        return record
    record["commit"] = commit or None
    record["uncommitted"] = sorted(set(changed) | set(untracked))
    if record["uncommitted"]:
        digest = hashlib.sha256(diff.encode())
        for name in sorted(untracked):
            digest.update(name.encode() + b"\0" + (top / name).read_bytes())
        record["changes_sha256"] = digest.hexdigest()
    return record


def describe(record: dict | None, commit: str = "") -> str:
    """One line: the commit, and what differed from it; ``commit`` is the older files' field."""
    if not record:
        return f"commit {commit} (no hash of the files: recorded before gdbench kept one)" \
            if commit else "not recorded"
    files = f"files sha256 {record['files_sha256'][:12]}"
    if not record.get("commit"):
        return f"no checkout; {files}"
    text = f"commit {record['commit'][:12]}"
    if record.get("uncommitted"):
        n = len(record["uncommitted"])
        return (f"{text} + uncommitted changes to {n} file{'s' * (n != 1)} (sha256 "
                f"{record['changes_sha256'][:12]}); {files}")
    return f"{text}, no uncommitted changes; {files}"
