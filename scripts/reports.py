"""Write the committed reports (``results/*-report.md``) again from the results files each names.

A report names its files in its ``## results/FILE.json`` headings, in the order they were given;
this script runs ``gdbench report`` on them from the repository's root, into the report's own
place, its plots in the folder beside it. ``--check`` writes nothing there: it makes each report
without plots in a temporary folder and exits with status 1 where the committed text, its plots
left aside, is not what its files give today (``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gdbench import cli  # noqa: E402
from scripts.docs_tables import finish  # noqa: E402

SOURCE = re.compile(r"^## (results/\S+\.json)$", re.M)


def reports() -> list[Path]:
    return sorted((ROOT / "results").glob("*-report.md"))


def sources(report: Path) -> list[str]:
    return SOURCE.findall(report.read_text())


def text_of(markdown: str) -> str:
    """A report's text without its plots: no image lines and no Plots heading, blank lines
    single."""
    lines = [line.rstrip() for line in markdown.splitlines()
             if not line.startswith("![") and line != "## Plots"]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def make(report: Path, out: Path, plots: bool) -> None:
    """``gdbench report`` of ``report``'s files, from the root, written to ``out``."""
    args = ["report", *sources(report), "-o", str(out)] + ([] if plots else ["--no-plots"])
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            status = cli.main(args)
    finally:
        os.chdir(here)
    if status != 0:
        raise SystemExit(f"gdbench {' '.join(args)}: exit status {status}")


def main(argv: list[str]) -> int:
    stale = []
    for report in reports():
        if "--check" in argv:
            with tempfile.TemporaryDirectory() as folder:
                fresh = Path(folder) / report.name
                make(report, fresh, plots=False)
                if text_of(fresh.read_text()) != text_of(report.read_text()):
                    stale.append(report)
        else:
            make(report, report, plots=True)
            stale.append(report)
    return finish(stale, "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
