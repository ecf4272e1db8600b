"""One self-contained HTML page of results: ``gdbench report ... --html FILE.html``.

Everything is inline, nothing is fetched: the style, the script, the plots (matplotlib's SVG,
each kernel's line given an id) and the figures the script needs (a JSON block). The page
holds each run's environment and source, the table of its cases, the plots, the findings, and
the ``ab`` sessions and ``converge`` runs given with it, and ``compare`` of two runs of one
device. Without JavaScript it is a plain page: the tables and plots read, nothing moves. With
it the case tables sort by any column and filter by kernel, device and dtype, a point of the
scaling and bandwidth plots shows its value and interval on hover (of the other plots, its
values), and a kernel's lines can be hidden. ``#selftest`` at the end of its address makes the
page check itself (rows, plots, sorting, errors) and write what it found
into ``<pre id="selftest">``, which the tests read in a headless browser.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

from gdbench.analysis import ab as ab_view
from gdbench.analysis import bisect as bisect_view
from gdbench.analysis import convergence
from gdbench.analysis.compare import compare_timings, run_timings
from gdbench.analysis.findings import run_labels
from gdbench.analysis.plot import figures, plain_log_labels, pyplot, series, series_name
from gdbench.analysis.report import axis_tables, environment_lines, findings_lines
from gdbench.analysis.tables import MARKS, format_precision, format_time, marks
from gdbench.core.devices import missing_module
from gdbench.core.units import format_size
from gdbench.files.results import write_atomic

ASSETS = Path(__file__).with_name("html_assets")


def _markdown(lines: list[str]) -> str:
    reason = missing_module("markdown")
    if reason:
        raise ValueError(f"the HTML report needs Markdown: {reason}")
    import markdown

    return markdown.markdown("\n".join(lines), extensions=["tables"])


def _svg(fig) -> str:
    plain_log_labels(fig)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    pyplot().close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # without the XML declaration and doctype


def _value(v: float) -> str:
    return f"{v:.3g}"


def hover_points(fig, name: str) -> dict:
    """The points of every line with markers and every scatter of ``fig`` that has no id yet:
    each gets one (``NAME-pK``), and its points' label and values go to the page, so that the
    script can show them on hover in any plot."""
    from matplotlib.collections import PathCollection

    found = {}
    for ax in fig.axes:
        artists = [a for a in ax.lines if a.get_marker() not in (None, "None", "", " ")]
        artists += [c for c in ax.collections if isinstance(c, PathCollection)]
        for artist in artists:
            if artist.get_gid():
                continue
            gid = f"{name}-p{len(found)}"
            artist.set_gid(gid)
            xy = artist.get_xydata() if hasattr(artist, "get_xydata") else artist.get_offsets()
            label = artist.get_label()
            found[gid] = {"label": "" if label.startswith("_") else label,
                          "x": ax.get_xlabel(), "y": ax.get_ylabel(),
                          "points": [[_value(float(x)), _value(float(y))] for x, y in xy]}
    return found


def _number(value) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def case_rows(run, label: str) -> str:
    """The run's cases as table rows; each numeric cell carries its value for sorting."""
    rows = []
    for c in run.cases:
        spec = c.spec
        cells = [(spec.name, spec.name), (spec.device, spec.device), (spec.dtype, spec.dtype),
                 (format_size(spec.n_samples), spec.n_samples)]
        if c.ok and not c.contended:
            s = c.summary()
            tput = c.throughput
            fraction = run.fraction(c)
            flags = marks(c, run.exceeds_roofline(c)).strip()
            cells += [(format_time(s.median), s.median), (format_precision(s.precision),
                                                          s.precision),
                      (format_time(tput.median) if tput else "", tput.median if tput else None),
                      (f"{c.bandwidth / 1e9:.3g}", c.bandwidth / 1e9),
                      (f"{100 * fraction:.0f}%" if fraction is not None else "", fraction),
                      (flags, flags)]
            status = "ok"
        else:
            status = "contended" if c.ok else c.status
            cells += [(status.upper(), None), ("", None), ("", None), ("", None), ("", None),
                      ("^" if c.ok else "", "")]
        title = html.escape(c.message or "; ".join(c.contention_reasons + c.throttle_reasons),
                            quote=True)
        tds = "".join(f'<td data-value="{html.escape(v if isinstance(v, str) else _number(v))}">'
                      f"{html.escape(text)}</td>" for text, v in cells)
        rows.append(f'<tr data-kernel="{html.escape(spec.name)}" data-device="{spec.device}" '
                    f'data-dtype="{spec.dtype}" data-status="{status}" title="{title}">{tds}</tr>')
    return "\n".join(rows)


COLUMNS = [("kernel", "text"), ("device", "text"), ("dtype", "text"), ("N", "number"),
           ("latency", "number"), ("±", "number"), ("throughput", "number"), ("GB/s", "number"),
           ("% of roofline", "number"), ("flags", "text")]


def case_table(run, label: str, index: int) -> str:
    head = "".join(f'<th data-type="{kind}" scope="col">{html.escape(name)}</th>'
                   for name, kind in COLUMNS)
    legend = "; ".join(f"<code>{html.escape(m)}</code> {html.escape(meaning)}"
                       for m, meaning in MARKS.items())
    return (f'<div class="filters" data-table="cases-{index}"></div>'
            f'<table class="cases" id="cases-{index}"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{case_rows(run, label)}\n</tbody></table>"
            "<p class=\"note\">latency: median of single steps; ±: half-width of its 95% "
            "interval from the spread between the windows of this run (not between runs); "
            "throughput: time per step in batches of back-to-back steps; GB/s: x and y read "
            "once per step at the latency; % of roofline: against the read roofline measured "
            f"in the same rounds. Flags: {legend}. Hover a row for its message.</p>")


def plot_data(runs, labels) -> list[dict]:
    """The points of the scaling and bandwidth plots, in their series order, for hovering."""
    out = []
    for (name, device, label), cases in series(runs, labels).items():
        out.append({"name": series_name(name, device, label), "points": [
            {"n": format_size(c.spec.n_samples), "latency": format_time(c.summary().median),
             "interval": format_precision(c.summary().precision),
             "throughput": format_time(c.throughput.median) if c.throughput else "",
             "gbs": f"{c.bandwidth / 1e9:.3g} GB/s"} for c in cases]})
    return out


def compare_markdown(runs) -> list[str]:
    """``gdbench compare`` of two runs of one device, as a Markdown table: two separate runs,
    whose drift the interval cannot cancel (``gdbench ab`` measures both sides together)."""
    rows = compare_timings(run_timings(runs[0]), run_timings(runs[1]))
    return (["Ratios of the second run's medians to the first's, with a 95% interval from each "
             "run's windows; runs measured apart drift, which `gdbench ab` cancels by pairing.",
             "", "| case | base | new | new / base | interval | verdict |",
             "|---|---:|---:|---:|---|---|"]
            + [f"| {c.label} | {format_time(c.base_median)} | {format_time(c.new_median)} | "
               f"{c.ratio:.3f} | {c.low:.3f}–{c.high:.3f} | {c.verdict}"
               f"{' (' + c.why + ')' if c.why else ''} |" for c in rows])


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def html_report(runs, sources, sessions=(), converged=(), size=None, searches=()) -> str:
    """The page of ``runs`` (from ``sources``), with ``ab`` sessions and ``bisect`` searches
    (their JSON as dicts) and ``converge`` results, as one string."""
    labels = run_labels(runs, sources) if runs else []
    parts = []
    for index, (run, source, label) in enumerate(zip(runs, sources, labels)):
        body = (_markdown(environment_lines(run)) + case_table(run, label, index)
                + _markdown(axis_tables(run)))
        parts.append(_section(str(source), body, f"run-{index}"))
    interactive = {"scaling", "bandwidth"}  # their series are the kernels', in series() order
    hover: dict = {}  # the points of the other plots, by the id of their line or scatter
    if runs and series(runs, labels):
        plots = []
        for name, fig in figures(runs, size, labels):
            hover.update(hover_points(fig, name))
            kind = " interactive" if name in interactive else ""
            plots.append(f'<figure class="plot{kind}" data-plot="{name}">{_svg(fig)}'
                         f"<figcaption>{name}</figcaption></figure>")
        parts.append(_section("Plots", '<div class="toggles"></div>' + "\n".join(plots), "plots"))
        parts.append(_section("Findings", _markdown(findings_lines(runs, labels)), "findings"))
    if len(runs) == 2 and runs[0].settings.get("device") == runs[1].settings.get("device"):
        parts.append(_section(f"compare: {sources[1]} against {sources[0]}",
                              _markdown(compare_markdown(runs)), "compare"))
    for session in sessions:
        parts.append(_section(ab_view.title(session), _markdown(
            ab_view.markdown(session).split("\n")[1:]), "ab"))
    for search in searches:
        text = bisect_view.markdown(search).split("\n")
        parts.append(_section(text[0].removeprefix("### "), _markdown(text[1:]), "bisect"))
    for result in converged:
        tables = []
        for n in result.settings["sizes"]:
            head = "| " + " | ".join(convergence.COLUMNS) + " |"
            tables += [f"**{convergence.title(result, n)}**", "", head,
                       "|" + "---|" * len(convergence.COLUMNS)]
            tables += ["| " + " | ".join(row) + " |" for row in convergence.rows(result, n)] + [""]
        curves = ""
        for stem, fig in convergence.converge_figures([result]):
            hover.update(hover_points(fig, stem))
            curves += f'<figure class="plot" data-plot="{stem}">{_svg(fig)}</figure>'

        parts.append(_section("converge", _markdown(tables) + curves, "converge"))
    # "</" could end the script element early
    data = json.dumps({"series": plot_data(runs, labels) if runs else [],
                       "hover": hover}).replace("</", "<\\/")
    style = (ASSETS / "report.css").read_text()
    script = (ASSETS / "report.js").read_text()
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            f"<title>gdbench report</title><style>{style}</style></head><body>"
            "<h1>gdbench report</h1>\n" + "\n".join(parts)
            + '<pre id="selftest" hidden></pre>'
            + f'<script type="application/json" id="gdbench-data">{data}</script>'
            + f"<script>{script}</script></body></html>\n")


def write_html_report(runs, sources, out, sessions=(), converged=(), size=None,
                      searches=()) -> Path:
    """``html_report`` written atomically to ``out``."""
    out = Path(out)
    write_atomic(out, html_report(runs, sources, sessions, converged, size, searches))
    return out
