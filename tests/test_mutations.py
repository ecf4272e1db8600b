"""scripts/mutations.py, the check that each pinned rule's tests fail when the rule changes:
its mutations still apply to the code, a caught one passes and a survivor fails the check."""

import importlib.util
import sys

import pytest

from tests.plugins import REPO


def mutations():
    name = "scripts_mutations"
    if name not in sys.modules:  # registered first: its dataclass looks its module up
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "mutations.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_every_mutation_still_applies_once_to_its_file():
    m = mutations()
    assert len(m.MUTATIONS) >= 40
    assert [x.name for x in m.MUTATIONS if not m.applies(x)] == []
    assert len({x.name for x in m.MUTATIONS}) == len(m.MUTATIONS)
    for x in m.MUTATIONS:
        assert all((REPO / t.split("::")[0]).is_file() for t in x.tests), x.name


@pytest.mark.parametrize("git_lists_files", [True, False])
def test_a_caught_mutation_passes_and_one_no_test_sees_fails_the_check(monkeypatch, capsys,
                                                                        git_lists_files):
    """In a git checkout (a survivor among them: exit 1), and in a copy without .git, CI's,
    whose files it copies itself (one caught: exit 0)."""
    m = mutations()
    line = '"""The ``gdbench`` command line: parse arguments, call the library, print.'
    unseen = m.Mutation("a docstring reworded", "gdbench/cli/__init__.py", line,
                        line.replace("print.", "and print."), ("tests/test_bad_input.py",))
    [caught] = [x for x in m.MUTATIONS if x.name == "cli bad input exit 1"]
    monkeypatch.setattr(m, "MUTATIONS", [caught, unseen])
    if git_lists_files:
        assert m.main([]) == 1
        out = capsys.readouterr().out
        assert "SURVIVED a docstring reworded" in out and "1 of 2 mutations caught" in out
    else:
        real = m.subprocess.run
        monkeypatch.setattr(m.subprocess, "run", lambda args, **kw: (
            m.subprocess.CompletedProcess(args, 128, "", "fatal: not a git repository")
            if args[0] == "git" else real(args, **kw)))
        assert m.main(["cli bad input"]) == 0
        assert "caught   cli bad input exit 1" in capsys.readouterr().out
    assert line in (REPO / "gdbench/cli/__init__.py").read_text()  # the copy changed, not this
