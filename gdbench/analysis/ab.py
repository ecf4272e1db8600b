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
from gdbench.records.results import format_size

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


def paired_study_markdown(study: dict) -> list[str]:
    """The tables of a ``gdbench noise --paired`` study (its ``paired.json``), derived from its
    rows: the A/A verdicts per kernel, the power against each calibrated slowdown, and what
    each kind of session cost."""
    if "comparisons" not in study:  # a study of gdbench before its calibrated slowdowns
        return _slowed_copies_markdown(study)
    rows = study["comparisons"]
    aa = [r for r in rows if r["kind"] == "aa"]
    lines = ["| A/A | comparisons | FASTER or SLOWER | SAME | AMBIGUOUS | failed |",
             "|---|---:|---:|---:|---:|---:|"]
    for kernel in [*study["kernels"], None]:
        got = [r for r in aa if kernel is None or r["kernel"] == kernel]
        if not got:
            continue
        n = len(got)
        false = sum(r["verdict"] in ("FASTER", "SLOWER") for r in got)
        same = sum(r["verdict"] == "SAME" for r in got)
        ambiguous = sum(r["verdict"] == "AMBIGUOUS" for r in got)
        name = f"`{kernel}`" if kernel else "**all**"
        lines.append(f"| {name} | {n} | {false} ({false / n:.0%}) | {same} ({same / n:.0%}) | "
                     f"{ambiguous} | {n - false - same - ambiguous} |")
    power = [r for r in rows if r["kind"] == "power"]
    if power:
        lines += ["", "| slowdown | its true size (median, measured in the worker) | "
                      "comparisons | SLOWER | FASTER | SAME | AMBIGUOUS |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for slowdown in sorted({r["slowdown"] for r in power}):
            got = [r for r in power if r["slowdown"] == slowdown]
            n = len(got)
            true = [r["calibrated"] for r in got if r["calibrated"] is not None]
            count = {v: sum(r["verdict"] == v for r in got) for v in VERDICTS}
            lines.append(f"| +{100 * slowdown:g}% | "
                         + (f"+{100 * float(np.median(true)):.1f}%" if true else "-")
                         + f" | {n} | {count['SLOWER']} ({count['SLOWER'] / n:.0%}) | "
                         f"{count['FASTER']} | {count['SAME']} | {count['AMBIGUOUS']} |")
        sizes = sorted({r["n"] for r in power})
        slowdowns = sorted({r["slowdown"] for r in power})
        lines += ["", "Called SLOWER, by kernel and size (latency and throughput together):",
                  "", "| kernel | N | " + " | ".join(f"+{100 * s:g}%" for s in slowdowns)
                  + " |", "|---|---:|" + "---:|" * len(slowdowns)]
        for kernel in study["kernels"]:
            for n in sizes:
                cells = []
                for s in slowdowns:
                    got = [r for r in power if r["kernel"] == kernel and r["n"] == n
                           and r["slowdown"] == s]
                    slower = sum(r["verdict"] == "SLOWER" for r in got)
                    cells.append(f"{slower}/{len(got)}" if got else "-")
                if any(c != "-" for c in cells):
                    lines.append(f"| `{kernel}` | {format_size(n)} | " + " | ".join(cells)
                                 + " |")
    lines += ["", "| sessions | count | cases each | seconds (median) | blocks (median) | "
                  "in windows (median) |", "|---|---:|---:|---:|---:|---:|"]
    for kind, name in (("aa", "A/A"), ("power", "slowed")):
        got = [s for s in study["sessions"] if s["kind"] == kind]
        if got:
            share = [s["measuring_share"] for s in got if s.get("measuring_share") is not None]
            lines.append(f"| {name} | {len(got)} | {got[0]['cases']} | "
                         f"{np.median([s['seconds'] for s in got]):.0f} | "
                         f"{np.median([s['blocks'] for s in got]):.0f} | "
                         + (f"{np.median(share):.0%}" if share else "-") + " |")
    return lines


def headline(study: dict) -> str:
    """The study in one sentence, for the README: the A/A rates and the power at +5% and +10%."""
    rows = study["comparisons"]
    aa = [r for r in rows if r["kind"] == "aa"]
    false = sum(r["verdict"] in ("FASTER", "SLOWER") for r in aa)
    same = sum(r["verdict"] == "SAME" for r in aa)
    power = {}
    for slowdown in (0.05, 0.10):
        got = [r for r in rows if r["kind"] == "power" and r["slowdown"] == slowdown]
        if got:
            power[slowdown] = (sum(r["verdict"] == "SLOWER" for r in got), len(got))
    s = study["settings"]
    said = ", ".join(f"a calibrated +{100 * k:g}% SLOWER in {n} of {total} ({n / total:.0%})"
                     for k, (n, total) in sorted(power.items(), reverse=True))
    return (f"On the 2-core VM, in sessions of {s['max_seconds']:g} s "
            f"of one kernel at {len(s['sizes'])} sizes ({', '.join(study['kernels'])}): of "
            f"{len(aa)} A/A comparisons `ab` called {false} FASTER or SLOWER and {same} SAME "
            f"({same / max(len(aa), 1):.0%}); it called {said}.")


def targets_markdown(study: dict, moonshots: list[dict], sessions: list[dict]) -> list[str]:
    """The targets of ``ab`` against what was measured: the A/A rates and the power of
    ``study``, the verdicts and times of ``sessions`` (two kernels and an A/A, twice each),
    and +2% in each of ``moonshots``; each said as met or not."""
    comparisons = study["comparisons"]
    aa = [r for r in comparisons if r["kind"] == "aa"]
    cases = len(aa) // 2
    false = sum(r["verdict"] in ("FASTER", "SLOWER") for r in aa)
    same = sum(r["verdict"] == "SAME" for r in aa)
    power = [r for r in comparisons if r["kind"] == "power"]

    def slower(found, k):
        got = [r for r in found if r["slowdown"] == k]
        return sum(r["verdict"] == "SLOWER" for r in got), len(got)

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    faster = sum(r["verdict"] == "FASTER" for r in power)
    lines = ["| target | measured | |", "|---|---|---|",
             f"| A/A: no FASTER or SLOWER over 48 cases at least | {false} of {len(aa)} "
             f"comparisons ({cases} cases) | {met(false == 0 and cases >= 48)} |",
             f"| A/A: SAME in 80% at least | {same} of {len(aa)} ({same / len(aa):.0%}) | "
             f"{met(same >= 0.8 * len(aa))} |"]
    for k, goal in ((0.10, 0.9), (0.05, 0.7)):
        n, total = slower(power, k)
        if total:
            lines.append(f"| +{100 * k:g}%: SLOWER in {goal:.0%} at least | {n} of {total} "
                         f"({n / total:.0%}) | {met(n >= goal * total)} |")
    lines.append(f"| never FASTER against a slowdown | {faster} of {len(power)} | "
                 f"{met(faster == 0)} |")
    for session in sessions:
        table = rows(session)
        undecided = sum(r["verdict"] in ("AMBIGUOUS",) + FAILED for r in table)
        name = title(session).split(" (threshold")[0]
        lines.append(f"| a verdict on every case within 3 minutes: {name} | "
                     f"{session['seconds']:.0f} s, {undecided} of {len(table)} comparisons "
                     f"without one | {met(undecided == 0 and session['seconds'] <= 180)} |")
    for moonshot in moonshots:
        found = [r for r in moonshot["comparisons"] if r["kind"] == "power"]
        n, total = slower(found, 0.02)
        if total:
            per_case = np.median([s["seconds"] / s["cases"] for s in moonshot["sessions"]
                                  if s["kind"] == "power"])
            given = moonshot["settings"]
            lines.append(f"| moonshot: +2% SLOWER in 80% at least, within 60 s a case "
                         f"(threshold {format_percent(given['threshold'])}, minimum effect "
                         f"{format_percent(given['min_effect'])}) | {n} of {total} "
                         f"({n / total:.0%}), {per_case:.0f} s a case | "
                         f"{met(n >= 0.8 * total and per_case <= 60)} |")
    return lines


def reanalysis_markdown(study: dict, sessions: dict) -> list[str]:
    """A study's sessions judged again from their recorded rounds, with the sign test's
    interval over the blocks and with the signed-rank one, each case at the level of the look
    that judged it: how often each holds 1 in the A/A sessions, and what each calls."""
    import math

    from gdbench.runs.ab import paired as stats

    counts = {method: {} for method in ("sign", "signed-rank")}
    for entry in study["sessions"]:
        session = sessions[entry["file"]]
        for case in session["cases"]:
            if case["status"] != "ok":
                continue
            for metric in ("latency", "throughput"):
                v = case["verdicts"].get(metric)
                if not v:
                    continue
                estimates = stats.block_estimates(case["pairs"], metric)[:v["blocks"]]
                s = session["settings"]
                for method in counts:
                    if method == "sign":
                        mid, low, high = stats.sign_interval(estimates, v["level"])
                        mid, low, high = math.exp(mid), math.exp(low), math.exp(high)
                    else:
                        p = stats.paired(estimates, s["threshold"], s["min_effect"], v["level"])
                        mid, low, high = p.ratio, p.low, p.high
                    verdict = stats.decide(mid, low, high, s["threshold"], s["min_effect"])
                    key = ("A/A" if entry["kind"] == "aa" else
                           f"+{100 * case['slowdown']:g}%")
                    got = counts[method].setdefault(key, {"n": 0, "held": 0})
                    got["n"] += 1
                    got["held"] += low <= 1 <= high
                    got[verdict] = got.get(verdict, 0) + 1
    keys = sorted(counts["sign"], key=lambda k: (k != "A/A", float(k.strip("+%") or 0)
                                                  if k != "A/A" else 0))
    lines = ["| interval over blocks | sessions | comparisons | interval holds 1 | FASTER | "
             "SLOWER | SAME | AMBIGUOUS |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for method, found in counts.items():
        for key in keys:
            c = found[key]
            lines.append(f"| {method} | {key} | {c['n']} | {c['held']} | {c.get('FASTER', 0)} | "
                         f"{c.get('SLOWER', 0)} | {c.get('SAME', 0)} | "
                         f"{c.get('AMBIGUOUS', 0)} |")
    return lines


def paired_study_lines(study: dict) -> list[str]:
    """What ``noise --paired`` prints at its end: the A/A rates and the power."""
    rows = study["comparisons"]
    aa = [r for r in rows if r["kind"] == "aa"]
    lines = []
    if aa:
        false = sum(r["verdict"] in ("FASTER", "SLOWER") for r in aa)
        same = sum(r["verdict"] == "SAME" for r in aa)
        lines.append(f"A/A, {len(aa)} comparisons: {false} FASTER or SLOWER "
                     f"({false / len(aa):.1%}), {same} SAME ({same / len(aa):.1%})")
    power = [r for r in rows if r["kind"] == "power"]
    for slowdown in sorted({r["slowdown"] for r in power}):
        got = [r for r in power if r["slowdown"] == slowdown]
        slower = sum(r["verdict"] == "SLOWER" for r in got)
        faster = sum(r["verdict"] == "FASTER" for r in got)
        lines.append(f"slowed {100 * slowdown:g}%: SLOWER in {slower} of {len(got)} "
                     f"({slower / len(got):.0%}), FASTER in {faster}")
    return lines


def _slowed_copies_markdown(study: dict) -> list[str]:
    """The table of a study of the example plugin's slowed copies: the A/A verdicts and the
    power against each."""
    aa, s = study["aa"], study["settings"]
    lines = ["| sessions | comparisons | FASTER or SLOWER | SAME | AMBIGUOUS |",
             "|---|---:|---:|---:|---:|",
             f"| A/A, {study['runs']} × {len(study['kernels'])} kernels × "
             f"{len(s['sizes'])} sizes | {aa['comparisons']} | "
             f"{aa['FASTER'] + aa['SLOWER']} ({aa['false_rate']:.1%}) | "
             f"{aa['SAME']} ({aa['same_rate']:.1%}) | {aa['AMBIGUOUS']} |"]
    if study["power"]:
        lines += ["", "| numpy-manual against | metric | measured ratio (median) | "
                      "called SLOWER |", "|---|---|---:|---:|"]
        def slowdown(item):
            kernel, metric = item[0].rsplit(" ", 1)
            return int(kernel.rsplit("-", 1)[-1]) if kernel[-1].isdigit() else 0, kernel, metric

        for name, p in sorted(study["power"].items(), key=slowdown):
            kernel, metric = name.rsplit(" ", 1)
            lines.append(f"| {kernel} | {metric} | {p['median_ratio']:.3f} | "
                         f"{p['slower']:.0%} of {p['comparisons']} |")
    return lines


def components_markdown(sessions: list[dict]) -> list[str]:
    """How the log ratio varied in A/A ``sessions``: its standard deviation between rounds of
    one block and between blocks beyond that (``gdbench.runs.ab.session.variance_components``),
    the median over their cases, per size."""
    rows: dict = {}
    for session in sessions:
        for case in session["cases"]:
            for metric, c in case.get("components", {}).items():
                rows.setdefault((case["n_samples"], metric), []).append(c)
    lines = ["| N | metric | cases | between rounds of a block | between blocks (processes) |",
             "|---:|---|---:|---:|---:|"]
    for (n, metric), found in sorted(rows.items()):
        rounds = np.nanmedian([c["rounds"] for c in found])
        processes = np.nanmedian([c["processes"] for c in found])
        lines.append(f"| {format_size(n)} | {metric} | {len(found)} | {rounds:.1%} | "
                     f"{processes:.1%} |")
    return lines
