"""The source a run records: its commit, what differed from it, and a hash of the files."""

import subprocess

from gdbench.measure.environment import capture
from gdbench.measure.source import describe, files_sha256, source


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                   check=True, capture_output=True)


def package(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 2\n")
    return pkg


def test_without_a_checkout_the_files_hash_names_the_code(tmp_path):
    pkg = package(tmp_path)
    first = source(pkg)
    assert first["commit"] is None and first["uncommitted"] == []
    (pkg / "a.py").write_text("A = 3\n")
    assert source(pkg)["files_sha256"] != first["files_sha256"]
    assert describe(first).startswith("no checkout; files sha256 ")


def test_uncommitted_changes_are_named_and_hashed(tmp_path):
    pkg = package(tmp_path)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    clean = source(pkg)
    assert clean["commit"] == head and clean["uncommitted"] == []
    assert clean["changes_sha256"] is None and "no uncommitted changes" in describe(clean)
    (tmp_path / "notes.txt").write_text("outside the package: not the code that ran\n")
    assert source(pkg)["uncommitted"] == []
    (pkg / "a.py").write_text("A = 3\n")
    edited = source(pkg)
    (pkg / "a.py").write_text("A = 4\n")
    edited_again = source(pkg)
    assert edited["uncommitted"] == ["pkg/a.py"] and edited["commit"] == head
    # two different edits of one commit: told apart, as '-dirty' could not
    assert edited["changes_sha256"] != edited_again["changes_sha256"]
    assert edited["files_sha256"] != edited_again["files_sha256"]
    (pkg / "c.py").write_text("C = 5\n")
    added = source(pkg)
    assert added["uncommitted"] == ["pkg/a.py", "pkg/c.py"]
    assert "uncommitted changes to 2 files" in describe(added)


def test_a_run_records_the_source_of_this_package():
    env = capture("cpu")
    assert env["source"]["files_sha256"] == files_sha256()
    assert describe(None, "abc-dirty").startswith("commit abc-dirty (no hash")
