"""The tables of ``gdbench noise --paired``'s study of ``ab`` (its ``paired.json``): the A/A
verdicts, the power against calibrated slowdowns, the targets, the re-analysis of a study with
another interval, and the variance components; ``gdbench.analysis.ab`` shows one session."""

from __future__ import annotations

import numpy as np

from gdbench.analysis.ab import FAILED, rows, title
from gdbench.analysis.compare import VERDICTS
from gdbench.analysis.tables import format_percent
from gdbench.core.units import format_size


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
    one block and between blocks beyond that (``gdbench.runs.ab.paired.variance_components``),
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
