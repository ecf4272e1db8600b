"""What ``gdbench ab`` shows: a table as ``compare`` prints it, and Markdown for a pull request."""

from __future__ import annotations

import numpy as np

from gdbench.analysis.compare import VERDICTS
from gdbench.analysis.tables import format_time

COLOURS = {"FASTER": "green", "SLOWER": "red", "SAME": "", "AMBIGUOUS": "yellow"}


def base_new_medians(record, metric: str) -> tuple[float, float]:
    """The median over the paired windows of each side."""
    kept = [w for w in record.windows if not w["contended"]]
    return tuple(float(np.median([np.median(w[metric]) for w in kept if w["side"] == side]
                                 or [np.nan])) for side in ("base", "new"))


def rows(result) -> list[dict]:
    """One row per case and metric: base, new, ratio, interval, verdict, rounds, why."""
    out = []
    for record in result.cases:
        for metric in ("latency", "throughput"):
            v = record.verdicts.get(metric)
            base, new = base_new_medians(record, metric)
            if record.status != "ok" or v is None:
                out.append({"case": record.case.label, "metric": metric, "base": base,
                            "new": new, "ratio": None, "low": None, "high": None,
                            "verdict": "AMBIGUOUS", "blocks": len({p["block"] for p in record.pairs}),
                            "why": record.message or "too few blocks to judge"})
                continue
            why = "" if v["verdict"] != "AMBIGUOUS" else v.get("why") or (
                f"undecided after {v['blocks']} blocks: they disagree by {v['spread']:.1%} "
                "(standard deviation of the log ratio)")
            out.append({"case": record.case.label, "metric": metric, "base": base, "new": new,
                        "ratio": v["ratio"], "low": v["low"], "high": v["high"],
                        "verdict": v["verdict"], "blocks": v["blocks"], "why": why})
    return out


def counts(table: list[dict]) -> dict[str, int]:
    return {v: sum(r["verdict"] == v for r in table) for v in VERDICTS}


def table(result, title: str):
    from rich.markup import escape
    from rich.table import Table

    t = Table("case", "metric", "base", "new", "new / base", "paired 95% interval", "blocks",
              "verdict", title=title)
    for r in rows(result):
        colour = COLOURS[r["verdict"]]
        verdict = f"[{colour}]{r['verdict']}[/{colour}]" if colour else r["verdict"]
        if r["why"] and r["ratio"] is None:
            verdict += f" ({escape(r['why'])})"
        t.add_row(escape(r["case"]), r["metric"], format_time(r["base"]), format_time(r["new"]),
                  "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
                  "-" if r["low"] is None else f"{r['low']:.3f} – {r['high']:.3f}",
                  str(r["blocks"]), verdict)
    return t


def markdown(result, title: str) -> str:
    """A summary to paste into a pull request."""
    table_rows = rows(result)
    n = counts(table_rows)
    s = result.settings
    lines = [f"### {title}", "",
             f"{result.rounds} interleaved rounds in {result.blocks} blocks of fresh worker "
             f"processes, {result.seconds:.0f} s on {s['device']} ({s['dtype']}, threshold "
             f"{s['threshold']:.0%}); intervals are paired, over blocks, at the level of the "
             "looks made (overall 95%).", "",
             ", ".join(f"{count} {verdict.lower()}" for verdict, count in n.items()), "",
             "| case | metric | base | new | new / base | interval | verdict |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in table_rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        interval = "-" if r["low"] is None else f"{r['low']:.3f} – {r['high']:.3f}"
        verdict = f"**{r['verdict']}**" if r["verdict"] in ("FASTER", "SLOWER") else r["verdict"]
        lines.append(f"| {r['case']} | {r['metric']} | {format_time(r['base'])} | "
                     f"{format_time(r['new'])} | {ratio} | {interval} | {verdict} |")
    return "\n".join(lines) + "\n"
