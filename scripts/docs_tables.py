"""Write the result tables of README.md and docs/ from the committed results files.

A table's place is marked in the Markdown by

    <!-- table: results/FILE.json sizes=1e2,1e4 -->
    ...
    <!-- end table -->

and everything between the two lines is replaced by ``gdbench.analysis.tables.markdown_table``
of that file; ``<!-- ab: results/FILE.json -->`` marks the summary of a ``gdbench ab`` session
(``gdbench.analysis.ab.markdown``; with `` short`` after the file, its first lines only),
``<!-- paired: results/DIR/paired.json -->`` the tables of a ``gdbench noise --paired`` study
(``headline:`` instead of ``paired:``, the study in one sentence),
``<!-- coverage: results/DIR/coverage.json -->`` its resampled coverage
(``gdbench.analysis.coverage``), ``<!-- bisect: results/FILE.json -->`` a ``gdbench bisect``
search's answer and table, and ``<!-- layout: results/DIR -->`` a table of the
``gdbench noise`` studies in DIR's subfolders, ``<!-- windows: results/A.json,results/B.json
-->`` runs of one sweep with their windows per case and precision
(``scripts.more_tables.windows_markdown``), and ``<!-- runs: results/A.json,results/B.json
sizes=1e4,1e6 roofline -->`` runs of the same cases side by side
(``gdbench.analysis.tables.runs_markdown``; ``roofline``: with each run's share of its read
roofline). ``--check`` writes nothing and exits with status 1 where a table is not what its
file gives (``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gdbench.analysis import ab, ab_study, bisect  # noqa: E402
from gdbench.analysis.coverage import coverage_markdown  # noqa: E402
from gdbench.analysis.noise import assess  # noqa: E402
from gdbench.analysis.tables import markdown_table, runs_markdown  # noqa: E402
from gdbench.files import results  # noqa: E402
from gdbench.runs.sweep import parse_sizes  # noqa: E402
from scripts.more_tables import (  # noqa: E402
    converge_markdown,
    many_steps_markdown,
    memory_markdown,
    noise_logs_markdown,
    scaling_markdown,
    spread_markdown,
    windows_markdown,
)
from scripts.targets import targets_markdown  # noqa: E402

MARK = re.compile(r"^<!-- (?P<kind>table|ab|ab-targets|paired|reanalysis|headline|coverage|bisect|layout|runs|targets|converge|memory|scaling|noise-logs|spread|many-steps|windows): (?P<file>\S+)"
                  r"(?: sizes=(?P<sizes>\S+))?(?P<short> short)?(?P<roofline> roofline)? -->$")
END = "<!-- end table -->"

# How each study of a folder of gdbench noise logs was run, and the noise floor it used.
NOISE_STUDIES = {"results/noise-study-cpu-2core-epyc": [
    ("A.log", "A: `gdbench noise --runs 4`", "none"),
    ("B1.log", "B1: `gdbench noise --runs 3 --noise A/noise.json`", "A's, per case"),
    ("B2.log", "B2: the same, again", "A's, per case")]}


# A file read once per check: several tables read the same runs, and each read's summaries are
# worked out once (Samples keeps them).
read_json = functools.cache(results.read_json)
read_converge = functools.cache(results.read_converge)


def render(text: str) -> str:
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        out.append(lines[i])
        m = MARK.match(lines[i])
        i += 1
        if not m:
            continue
        end = lines.index(END, i)
        if m["kind"] == "layout":  # noise studies of run, with and without --keep-layout
            out += layout_table(ROOT / m["file"]) + [END]
        elif m["kind"] == "paired":  # a gdbench noise --paired study
            study = json.loads((ROOT / m["file"]).read_text())
            sessions = [json.loads(((ROOT / m["file"]).parent / Path(s["file"]).name).read_text())
                        for s in study["sessions"] if s["kind"] == "aa"]
            out += (ab_study.paired_study_markdown(study) + ["", "Variance components of the A/A "
                    "sessions' log ratios (standard deviations, median over cases):", ""]
                    + ab_study.components_markdown(sessions) + [END])
        elif m["kind"] == "ab-targets":  # STUDY;MOONSHOT,MOONSHOT,...;SESSION,SESSION,...
            study, moonshots, sessions = m["file"].split(";")
            out += ab_study.targets_markdown(json.loads((ROOT / study).read_text()),
                                       [json.loads((ROOT / f).read_text())
                                        for f in moonshots.split(",") if f],
                                       [results.read_ab(ROOT / f) for f in sessions.split(",")]
                                       ) + [END]
        elif m["kind"] == "reanalysis":  # a paired study judged again, sign and signed-rank
            study = json.loads((ROOT / m["file"]).read_text())
            folder = (ROOT / m["file"]).parent
            out += ab_study.reanalysis_markdown(study, {s["file"]: results.read_ab(folder / s["file"])
                                                  for s in study["sessions"]}) + [END]
        elif m["kind"] == "headline":  # a paired study in one sentence
            out += [ab_study.headline(json.loads((ROOT / m["file"]).read_text())), END]
        elif m["kind"] == "coverage":  # a paired study's coverage.json
            out += coverage_markdown(json.loads((ROOT / m["file"]).read_text())) + [END]
        elif m["kind"] == "bisect":  # a gdbench bisect search: its answer and table
            text = bisect.markdown(results.read_bisect(ROOT / m["file"])).split("\n")
            out += [text[0].removeprefix("### ") + ":", *text[1:-1], END]  # title as a line
        elif m["kind"] == "ab":  # a gdbench ab session: its summary, title line left out
            summary = ab.markdown(json.loads((ROOT / m["file"]).read_text())).split("\n")
            summary = summary[2:5] if m["short"] else summary[2:]  # short: no table
            while summary and not summary[-1]:
                summary.pop()
            out += summary + [END]
        elif m["kind"] == "targets":  # "h200 results/A.json,..." (the set's name first)
            name, files = m["file"].split(":", 1)
            if name.startswith("converge"):  # each column a pair of converge files: A+B
                runs = [tuple(read_converge(ROOT / f) for f in pair.split("+"))
                        for pair in files.split(",")]
                labels = [Path(pair.split("+")[-1]).stem for pair in files.split(",")]
            else:
                runs = [read_json(ROOT / f) for f in files.split(",")]
                labels = [Path(f).stem for f in files.split(",")]
            out += targets_markdown(name, runs, labels) + [END]
        elif m["kind"] == "converge":  # converge runs side by side
            out += converge_markdown([read_converge(ROOT / f)
                                      for f in m["file"].split(",")]) + [END]
        elif m["kind"] == "many-steps":  # K steps per call against one, run by run
            out += many_steps_markdown([read_json(ROOT / f)
                                        for f in m["file"].split(",")]) + [END]
        elif m["kind"] == "windows":  # runs of one sweep with fixed and budgeted windows
            out += windows_markdown([(Path(f).stem, read_json(ROOT / f))
                                     for f in m["file"].split(",")]) + [END]
        elif m["kind"] == "spread":  # how far runs of the same cases lay apart
            out += spread_markdown([read_json(ROOT / f) for f in m["file"].split(",")]) + [END]
        elif m["kind"] == "memory":
            out += memory_markdown(read_json(ROOT / m["file"])) + [END]
        elif m["kind"] == "scaling":
            out += scaling_markdown(read_json(ROOT / m["file"])) + [END]
        elif m["kind"] == "noise-logs":  # DIR: its studies, as NOISE_STUDIES names them
            out += noise_logs_markdown(ROOT / m["file"], NOISE_STUDIES[m["file"]]) + [END]
        elif m["kind"] == "runs":  # runs of the same cases side by side
            runs = [read_json(ROOT / name) for name in m["file"].split(",")]
            sizes = parse_sizes(m["sizes"]) if m["sizes"] else None
            out += runs_markdown(runs, sizes, bool(m["roofline"])) + [END]
        else:
            run = read_json(ROOT / m["file"])
            sizes = parse_sizes(m["sizes"]) if m["sizes"] else None
            out += markdown_table(run, sizes) + [END]
        i = end + 1
    return "\n".join(out)


def layout_table(folder: Path) -> list[str]:
    """One row per ``gdbench noise`` study in ``folder``'s subfolders (``fresh-1``,
    ``kept-1``, ...): how far its identical runs differed, and what compare made of them."""
    lines = ["| study | layout | runs | comparisons | FASTER or SLOWER | SAME | "
             "between runs (median RSD) |", "|---|---|---:|---:|---:|---:|---:|"]
    for study in sorted(p for p in folder.iterdir() if p.is_dir()):
        runs = [read_json(f) for f in sorted(study.glob("noise-[0-9]*.json"))]
        report = assess(runs)
        v = report.verdicts
        layout = ("the instance prepared first" if runs[0].settings.get("fresh_layout") is False
                  else "a fresh instance per window")
        lines.append(f"| {study.name} | {layout} | {len(runs)} | {report.comparisons} | "
                     f"{v['FASTER'] + v['SLOWER']} | {v['SAME']} | "
                     f"{report.floor.default:.1%} |")
    return lines


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
    return finish(stale, "--check" in argv)


def finish(stale: list[Path], check: bool) -> int:
    """Name the files that are stale (``check``) or were rewritten; status 1 for stale ones."""
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {'stale' if check else 'rewritten'}")
    return 1 if stale and check else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
