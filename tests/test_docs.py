"""The README and docs/ say what the code does: tables from results files, options that exist,
links that lead somewhere."""

import re

from gdbench import cli
from tests.plugins import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def options_of(command: str) -> set[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {o for action in sub._actions for o in action.option_strings}


def usage_blocks(text: str):
    """(command, the options named) of each ``python -m gdbench CMD ...`` in a code block,
    with its continuation lines."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        current = None
        for line in block.splitlines():
            m = re.match(r"\s*python -m gdbench (\w+)", line)
            if m:
                current = m.group(1)
            elif not line.startswith(" ") or not line.strip():
                current = None
            if current:
                yield current, set(re.findall(r"(--[a-z][a-z0-9-]*)", line.split("#")[0]))


def test_the_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    assert "python -m gdbench run" in lines[3] and "python -m pytest" in lines[4]


def test_every_table_is_what_its_results_file_gives(capsys):
    from scripts import docs_tables  # as `python scripts/docs_tables.py --check` runs it

    assert docs_tables.main(["--check"]) == 0, capsys.readouterr().out
    assert "<!-- table: results/cpu-default-epyc-1.json" in (REPO / "README.md").read_text()


def test_every_committed_report_is_what_its_results_files_give(capsys):
    """results/*-report.md, plots aside, as `gdbench report` writes it today from the files it
    names (`python scripts/reports.py` writes them again)."""
    from scripts import reports

    assert len(reports.reports()) >= 6
    assert all(reports.sources(r) for r in reports.reports())
    assert reports.main(["--check"]) == 0, capsys.readouterr().out


def test_every_option_in_a_usage_block_exists():
    checked = 0
    for path in DOCS:
        for command, named in usage_blocks(path.read_text()):
            missing = named - options_of(command)
            assert not missing, f"{path.name}: gdbench {command} has no {sorted(missing)}"
            checked += len(named)
    assert checked > 50


def test_every_link_to_a_file_of_the_repository_leads_to_one():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to {target}"
