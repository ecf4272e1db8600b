"""Write the result tables of README.md and docs/ from the committed results files.

A table's place is marked in the Markdown by

    <!-- table: results/FILE.json sizes=1e2,1e4 -->
    ...
    <!-- end table -->

and everything between the two lines is replaced by ``gdbench.analysis.tables.markdown_table``
of that file. ``--check`` writes nothing and exits with status 1 where a table is not what its
file gives (``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gdbench.analysis.tables import markdown_table  # noqa: E402
from gdbench.files.results import read_json  # noqa: E402
from gdbench.runs.sweep import parse_sizes  # noqa: E402

MARK = re.compile(r"^<!-- table: (?P<file>\S+)(?: sizes=(?P<sizes>\S+))? -->$")
END = "<!-- end table -->"


def render(text: str) -> str:
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        out.append(lines[i])
        m = MARK.match(lines[i])
        i += 1
        if not m:
            continue
        end = lines.index(END, i)
        run = read_json(ROOT / m["file"])
        sizes = parse_sizes(m["sizes"]) if m["sizes"] else None
        out += markdown_table(run, sizes) + [END]
        i = end + 1
    return "\n".join(out)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    stale = []
    for path in documents():
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path)
            if "--check" not in argv:
                path.write_text(new)
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {'stale' if '--check' in argv else 'rewritten'}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
