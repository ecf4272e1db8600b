"""What ``gdbench ab`` shows: a table as ``compare`` prints it, and Markdown for a pull request.

Both read a session in the shape of its results file (``AbResult.to_dict()``, or the JSON of
``--out``), so that a committed file gives the same table again.
"""

from __future__ import annotations

import numpy as np
from rich.markup import escape
from rich.table import Table

from gdbench.analysis.compare import VERDICTS
from gdbench.analysis.tables import format_percent, format_time

FAILED = ("WRONG", "ERROR", "OOM", "UNAVAILABLE")  # a case that a side did not run right
OUTCOMES = VERDICTS + FAILED
COLOURS = {"FASTER": "green", "SLOWER": "red", "SAME": "", "AMBIGUOUS": "yellow",
           **{f: "bold red" for f in FAILED}}


def base_new_medians(case: dict, metric: str) -> tuple[float, float]:
    """The median over the uncontended windows of each side."""
    kept = [w for w in case["windows"] if not w["contended"]]
    return tuple(float(np.median([np.median(w[metric]) for w in kept if w["side"] == side]
                                 or [np.nan])) for side in ("base", "new"))


def rows(session: dict) -> list[dict]:
    """One row per case and metric: base, new, ratio, interval, outcome, blocks, why. A case
    that a side failed has that failure (WRONG, ERROR, OOM, UNAVAILABLE) as its outcome, the
    side it happened on and the reason, never a verdict."""
    out = []
    for case in session["cases"]:
        for metric in ("latency", "throughput"):
            v = case["verdicts"].get(metric)
            base, new = base_new_medians(case, metric)
            blocks = len({p["block"] for p in case["pairs"]})
            common = {"case": case["label"], "metric": metric, "base": base, "new": new,
                      "side": case.get("side")}
            if case["status"] != "ok":
                out.append({**common, "ratio": None, "low": None, "high": None,
                            "verdict": case["status"].upper(), "blocks": blocks,
                            "why": case["message"]})
                continue
            if v is None:
                out.append({**common, "ratio": None, "low": None, "high": None,
                            "verdict": "AMBIGUOUS", "blocks": blocks,
                            "why": "too few blocks to judge"})
                continue
            why = "" if v["verdict"] != "AMBIGUOUS" else v.get("why") or (
                f"undecided after {v['blocks']} blocks: the interval is "
                f"{v['low']:.3f} – {v['high']:.3f} (the blocks' estimates differ by "
                f"{v['spread']:.1%})")
            out.append({**common, "ratio": v["ratio"], "low": v["low"], "high": v["high"],
                        "verdict": v["verdict"], "blocks": v["blocks"], "why": why})
    return out


def counts(table: list[dict]) -> dict[str, int]:
    """How many rows have each outcome: every verdict, and the failures that occurred."""
    found = {v: sum(r["verdict"] == v for r in table) for v in OUTCOMES}
    return {v: n for v, n in found.items() if n or v in VERDICTS}


def regressions(session: dict) -> list[dict]:
    """The rows that are SLOWER by more than the threshold: what ``--fail-on-regression``
    fails on."""
    limit = 1 + session["settings"]["threshold"]
    return [r for r in rows(session) if r["verdict"] == "SLOWER" and r["ratio"] > limit]


def measuring_share(session: dict) -> float | None:
    return session.get("measuring_share")


def summary_line(session: dict) -> str:
    """``2 faster, 0 slower, ... in 40 rounds, 6 blocks (95 s, 61% of it in windows)``."""
    n = counts(rows(session))
    share = measuring_share(session)
    return (", ".join(f"{count} {verdict.lower()}" for verdict, count in n.items())
            + f" in {session['rounds']} rounds, {session['blocks']} blocks "
            f"({session['seconds']:.0f} s" + (f", {share:.0%} of it in windows)"
                                               if share is not None else ")"))


def failed(session: dict) -> list[dict]:
    """The cases that a side did not run right (status other than ok)."""
    return [c for c in session["cases"] if c["status"] != "ok"]


def side_cell(r: dict, side: str) -> str:
    """A side's median, or its failure where the case failed on that side."""
    if r["side"] == side and r["verdict"] in FAILED:
        return r["verdict"]
    return format_time(r[side])


def incomplete(session: dict) -> str:
    """``incomplete: interrupted after N of at most M rounds`` (or, where the rounds of a block
    were chosen as it went, after how many seconds of its budget) for a session that did not
    end; "" for one that did."""
    if session.get("complete", True):
        return ""
    s = session["settings"]
    done = f"incomplete: interrupted after {session['rounds']}"
    if s.get("rounds_per_block"):
        return (f"{done} of at most {s['max_blocks'] * s['rounds_per_block']} rounds "
                f"({session['blocks']} blocks)")
    return (f"{done} rounds in {session['blocks']} blocks, {session['seconds']:.0f} s of at "
            f"most {s['max_seconds']:g} s")


def table(session: dict, title: str):
    t = Table("case", "metric", "base", "new", "new / base", "paired 95% interval", "blocks",
              "outcome", title=title)
    for r in rows(session):
        colour = COLOURS[r["verdict"]]
        verdict = f"[{colour}]{r['verdict']}[/{colour}]" if colour else r["verdict"]
        if r["why"] and r["ratio"] is None:
            verdict += f" ({escape(r['why'])})"
        t.add_row(escape(r["case"]), r["metric"], side_cell(r, "base"), side_cell(r, "new"),
                  "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
                  "-" if r["low"] is None else f"{r['low']:.3f} – {r['high']:.3f}",
                  str(r["blocks"]), verdict)
    return t


def title(session: dict) -> str:
    """``new side: kernels against base side: kernels (threshold 5%)``."""
    sides, cases = session["sides"], session["cases"]

    def kernels(side):
        names = list(dict.fromkeys(c[side] for c in cases))
        return ",".join(names) if len(names) <= 3 else f"{len(names)} kernels"

    return (f"{sides['new']['source']}: {kernels('new')} against {sides['base']['source']}: "
            f"{kernels('base')} (threshold {format_percent(session['settings']['threshold'])})")


def settings_line(session: dict) -> str:
    """How the session measured and how its intervals are made, in one sentence."""
    s = session["settings"]
    looks = session.get("looks")
    how = ("intervals are paired, over blocks (each block's Hodges-Lehmann estimate), at the "
           f"level of the look that gave them (alpha {s.get('alpha', 0.05):g} spent over "
           f"{len(looks)} look{'s' if len(looks) != 1 else ''})" if looks is not None else
           "intervals are paired, over blocks, at the level of the looks made (overall 95%)")
    effect = (f", minimum effect {format_percent(s['min_effect'])}" if "min_effect" in s
              else "")
    share = measuring_share(session)
    return (f"{session['rounds']} interleaved rounds in {session['blocks']} blocks of fresh "
            f"worker processes, {session['seconds']:.0f} s on {s['device']}"
            + (f" ({share:.0%} of it in windows)" if share is not None else "")
            + f" ({s['dtype']}, threshold {format_percent(s['threshold'])}{effect}); {how}.")


def markdown(session: dict) -> str:
    """A summary to paste into a pull request."""
    table_rows = rows(session)
    n = counts(table_rows)
    note = incomplete(session)
    lines = [f"### {title(session)}", ""] + ([f"**{note}**", ""] if note else []) + [
             settings_line(session), "",
             ", ".join(f"{count} {verdict.lower()}" for verdict, count in n.items()), "",
             "| case | metric | base | new | new / base | interval | outcome |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in table_rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        interval = "-" if r["low"] is None else f"{r['low']:.3f} – {r['high']:.3f}"
        verdict = (f"**{r['verdict']}**" if r["verdict"] in ("FASTER", "SLOWER") + FAILED
                   else r["verdict"])
        if r["verdict"] in FAILED:
            verdict += f" ({r['why']})".replace("|", "\\|")
        lines.append(f"| {r['case']} | {r['metric']} | {side_cell(r, 'base')} | "
                     f"{side_cell(r, 'new')} | {ratio} | {interval} | {verdict} |")
    return "\n".join(lines) + "\n"
