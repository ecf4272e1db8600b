"""What ``gdbench bisect`` shows: the commits it found, the ratio against GOOD at each commit it
tested (a table and a plot), and the ranges it could not narrow, from a bisect's results file."""

from __future__ import annotations

import math
from pathlib import Path

from gdbench.analysis.tables import format_percent
from gdbench.runs.bisect import ratios_against_good


def answer_lines(result: dict) -> list[str]:
    """The answer, one line each: the commits found (the first slow one first), the ranges
    left with why, the commits skipped; or that no case was slower, with the evidence."""
    commits = result["commits"]
    lines = []
    for f in result["found"]:
        ratio = f.get("ratio")
        size = (f" ({ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}] against "
                f"{commits[f['against']]['sha'][:12]})" if ratio else "")
        lines.append(f"{f['case']}: {f['commit'][:12]} {f['subject']}{size}")
    spread = {}
    for f in result["found"]:
        spread.setdefault(f["case"], []).append(f)
    for case, found in spread.items():
        if len(found) > 1:
            lines.append(f"{case}: the slowdown is spread over {len(found)} commits, each a "
                         "step of it")
    for u in result["unresolved"]:
        lines.append(f"{u['case']}: between {commits[u['lo']]['sha'][:12]} and "
                     f"{commits[u['hi']]['sha'][:12]}: {u['why']}")
    for s in result["skipped"]:
        lines.append(f"skipped {s['commit'][:12]} {s['subject']}: {s['why']}")
    if not result["found"] and not result["unresolved"]:
        first = result["sessions"][0]["session"] if result["sessions"] else None
        verdicts = ", ".join(
            f"{c['label']} {c['verdicts'].get('latency', {}).get('verdict', c['status'])} "
            f"{c['verdicts'].get('latency', {}).get('ratio', float('nan')):.3f}"
            for c in (first or {}).get("cases", []))
        lines.append("no regression found: GOOD against BAD gave " + (verdicts or "nothing"))
    return lines


def table_lines(result: dict) -> list[str]:
    """Markdown: each tested commit, oldest first, with its ratio against GOOD per case."""
    commits = result["commits"]
    ratios = ratios_against_good(result)
    tested = sorted({i for r in ratios.values() for i in r})
    found = {(f["index"], f["case"]) for f in result["found"]}
    skipped = {s["index"] for s in result["skipped"]}
    cases = sorted(ratios)
    lines = ["| # | commit | subject | " + " | ".join(f"{c} against GOOD" for c in cases)
             + " |", "|---:|---|---|" + "---:|" * len(cases)]
    for i in sorted(set(tested) | skipped):
        cells = []
        for c in cases:
            r = ratios[c].get(i)
            cell = "skipped" if i in skipped else "-" if r is None else (
                f"{r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]" if 0 < r[1] <= r[2] < math.inf
                else f"{r[0]:.3f} (too few blocks for an interval)")
            cells.append(f"**{cell}** ←" if (i, c) in found else cell)
        label = "GOOD" if i == 0 else "BAD" if i == len(commits) - 1 else str(i)
        lines.append(f"| {label} | `{commits[i]['sha'][:12]}` | {commits[i]['subject']} | "
                     + " | ".join(cells) + " |")
    return lines


def markdown(result: dict) -> str:
    s = result["settings"]
    head = (f"### gdbench bisect {s['good']}..{s['bad']}: {len(result['commits']) - 1} commits, "
            f"{len(result['sessions'])} paired sessions, {result['seconds']:.0f} s "
            f"(threshold {format_percent(s['threshold'])}, minimum effect "
            f"{format_percent(s['min_effect'])})")
    note = [] if result.get("complete", True) else ["**incomplete: interrupted**", ""]
    return "\n".join([head, "", *note, *[f"- {line}" for line in answer_lines(result)], "",
                      "Each tested commit's ratio against GOOD (latency; the product of the "
                      "paired steps that led to it, their log intervals added; ← a commit "
                      "found):", "", *table_lines(result)]) + "\n"


def plot(result: dict, out_dir) -> Path:
    """``bisect.png`` in ``out_dir``: the ratio against GOOD over the commits tested, one line
    per case, with intervals."""
    from gdbench.analysis.plot import pyplot, save_figure

    plt = pyplot()
    commits = result["commits"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for case, known in sorted(ratios_against_good(result).items()):
        xs = sorted(known)
        ys = [known[i][0] for i in xs]
        bounded = [0 < known[i][1] <= known[i][2] < math.inf for i in xs]
        errors = [[known[i][0] - known[i][1] if b else math.nan for i, b in zip(xs, bounded)],
                  [known[i][2] - known[i][0] if b else math.nan for i, b in zip(xs, bounded)]]
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=case)
    for f in result["found"]:
        ax.axvline(f["index"] - 0.5, color="red", alpha=0.3)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(commits)))
    ax.set_xticklabels([c["sha"][:7] for c in commits], rotation=60, fontsize=7)
    ax.set_ylabel("ratio against GOOD (latency)")
    ax.set_title("gdbench bisect: where the ratio steps up")
    ax.legend(fontsize=7)
    fig.tight_layout()
    [path] = save_figure(fig, out_dir, "bisect", formats=("png",))
    plt.close(fig)
    return path
