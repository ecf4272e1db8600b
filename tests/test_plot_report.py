"""Plots rendered headless, the Markdown report, and the findings it computes."""

import os
from dataclasses import replace
from pathlib import Path

import pytest

from gdbench.analysis import findings, plot
from gdbench.cli import main
from tests.synthetic import synthetic_run, write_run

pytest.importorskip("matplotlib", reason="the plot extra is not installed")

CPU = {("numpy-manual", 100): 10e-6, ("numpy-manual", 10_000): 20e-6,
       ("numpy-manual", 1_000_000): 2e-3,
       ("numba-fused", 100): 3e-6, ("numba-fused", 10_000): 5e-6, ("numba-fused", 1_000_000): 0.2e-3}
GPU = {("torch-manual", 100): 30e-6, ("torch-manual", 10_000): 31e-6,
       ("torch-manual", 1_000_000): 40e-6}
# a window's contention readings: other processes ran while it waited for a CPU
BUSY = {"run_delay_fraction": 0.4, "others_cpu_per_wall": 0.9}


def held_back(case, reading=BUSY):
    """``case`` as if every window of it read ``reading``."""
    return replace(case, readings={**case.readings, "contention": [reading] * 4})


def drawn(runs, stem, folder, **kwargs) -> str:
    """The SVG of plot ``stem`` of ``runs``: every figure made, as ``plot.plot`` makes them, and
    this one alone saved (saving is most of the time a plot takes)."""
    made = plot.figures(runs, **kwargs)
    try:
        assert stem in dict(made), [name for name, _ in made]
        plot.save_figure(dict(made)[stem], Path(folder), stem)
    finally:
        for _, fig in made:
            plot.pyplot().close(fig)
    return (Path(folder) / f"{stem}.svg").read_text()


def test_plots_written_headless(tmp_path):
    paths = plot.plot([synthetic_run("cpu", CPU, phased=True), synthetic_run("cuda", GPU)],
                      tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(
        f"{stem}.{fmt}" for stem in ("scaling", "bandwidth", "phases") for fmt in ("png", "svg"))
    for p in paths:
        head = p.read_bytes()[:200]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in p.read_bytes()
        assert p.stat().st_size > 5000


def test_log_axes_are_labelled_in_plain_text():
    assert [plot.power_of_ten(v) for v in (1e-6, 1.0, 100.0, 20.0, 3e-3)] == [
        "10⁻⁶", "10⁰", "10²", "2×10¹", "3×10⁻³"]
    plt = plot.pyplot()
    fig, ax = plt.subplots()
    try:
        ax.loglog([20, 80], [1e2, 1e7])  # x within one decade: only minor ticks to label
        plot.plain_log_labels(fig)
        fig.canvas.draw()
        labels = lambda axis, minor: [t.get_text() for t in axis.get_ticklabels(minor=minor)]  # noqa: E731
        assert {"10³", "10⁵", "10⁷"} <= set(labels(ax.yaxis, False))
        assert {"2×10¹", "4×10¹"} <= set(labels(ax.xaxis, True))
        assert not any("$" in text for text in labels(ax.xaxis, True) + labels(ax.yaxis, False))
    finally:
        plt.close(fig)


@pytest.mark.parametrize("count,beside", [(3, False), (24, True)])
def test_a_long_legend_goes_beside_the_lines(count, beside):
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        for i in range(count):
            ax.loglog([1, 10], [i + 1, i + 2], label=f"kernel-{i} (cpu, run-{i % 3})")
        plot.legend(ax)
        fig.canvas.draw()
        box, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert (box.x0 > axes.x1) == beside and box.y1 <= axes.y1 + 1
    finally:
        plt.close(fig)


def test_phase_plot_size_must_exist(tmp_path):
    with pytest.raises(ValueError, match="no case with 5 samples; sizes in the results: 1e2"):
        plot.plot([synthetic_run("cpu", CPU)], tmp_path, size=5)


def test_without_matplotlib_says_how_to_install(monkeypatch, tmp_path, capsys):
    from gdbench.core.devices import INSTALL_HINT

    monkeypatch.setattr(plot, "missing_module",
                        lambda m: f"{m} is not installed (pip install 'gdbench[{INSTALL_HINT[m]}]')")
    path = write_run(tmp_path / "r.json", "cpu", CPU)
    assert main(["plot", str(path), "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'gdbench[plot]'" in err and len(err.strip().splitlines()) == 1


def test_findings_on_known_data():
    runs = [synthetic_run("cpu", CPU, spread=0), synthetic_run("cuda", GPU, spread=0)]
    best = findings.fastest(runs)
    assert best[("", "cpu", 100)].spec.kernel == "numba-fused"
    assert best[("", "cuda", 1_000_000)].spec.kernel == "torch-manual"
    speed = findings.speedups(runs)
    assert speed[("numba-fused", "cpu", "")][1_000_000] == pytest.approx(10.0)
    assert speed[("torch-manual", "cuda", "")][1_000_000] == pytest.approx(50.0)
    [cross] = findings.crossovers(runs)
    assert (cross.kernel, cross.n_samples) == ("torch-manual", 1_000_000)
    floors = {(f.kernel, f.device): f for f in findings.launch_floors(runs)}
    assert floors[("numpy-manual", "cpu")].leaves_at == 1_000_000
    assert floors[("torch-manual", "cuda")].leaves_at is None
    assert floors[("torch-manual", "cuda")].floor == pytest.approx(30e-6)


def test_scaling_is_judged_against_the_plain_step_and_never_the_one_rank_step(tmp_path):
    times = {(0, 1000): 100e-6, (1, 1000): 300e-6, (2, 1000): 200e-6, (2, 2000): 250e-6}
    run = synthetic_run("cpu", {("torch-manual", 1000 * (i + 1)): t
                                for i, t in enumerate(times.values())}, spread=0)
    run = replace(run, cases=[replace(c, spec=replace(c.spec, ranks=ranks, n_samples=n))
                              for c, (ranks, n) in zip(run.cases, times)])
    rows = {s.kind: s for s in findings.scaling(run)}
    assert (rows["strong"].single, rows["strong"].one_rank) == pytest.approx((100e-6, 300e-6))
    assert rows["strong"].efficiency == pytest.approx(100 / (2 * 200))
    assert rows["weak"].efficiency == pytest.approx(100 / 250)
    assert "Strong scaling" in drawn([run], "ranks", tmp_path)
    contended = replace(run, cases=[held_back(run.cases[0])] + run.cases[1:])
    assert findings.scaling(contended) == []  # no baseline at 1000: no row, not the 1-rank time
    # a run made before the launcher measured the plain step: T1 is its one-rank time, as it says
    from gdbench.analysis.report import scaling_lines

    assert "against the plain step in one process" in "\n".join(scaling_lines(run, ""))
    old = replace(run, cases=run.cases[1:])
    text = "\n".join(scaling_lines(old, ""))
    assert "against one rank (T1, all-reduce included: this run has no plain step)" in text
    assert "| torch-manual | 2 | strong | 1e3 | - | 300 µs | 200 µs | 75% |" in text


def test_two_runs_of_one_device_stay_apart(tmp_path):
    """Findings and plot lines per run: a slower second run is not mixed into the first."""
    first = synthetic_run("cpu", CPU, spread=0)
    second = synthetic_run("cpu", {k: 2 * v for k, v in CPU.items()}, spread=0)
    labels = findings.run_labels([first, second], ["a/base.json", "b/new.json"])
    assert labels == ["base", "new"]
    best = findings.fastest([first, second], labels)
    assert best[("base", "cpu", 100)].summary().median == pytest.approx(3e-6)
    assert best[("new", "cpu", 100)].summary().median == pytest.approx(6e-6)
    floors = {(f.kernel, f.label): f.floor for f in findings.launch_floors([first, second],
                                                                           labels)}
    assert floors[("numba-fused", "new")] == pytest.approx(2 * floors[("numba-fused", "base")])
    svg = drawn([first, second], "scaling", tmp_path, labels=labels)
    assert "numba-fused (cpu, base)" in svg and "numba-fused (cpu, new)" in svg


def test_phases_plot_shows_cases_that_were_not_timed(tmp_path):
    from gdbench.records.results import CaseResult, CaseSpec

    run = synthetic_run("cpu", CPU, phased=True)
    run.cases.append(CaseResult(CaseSpec("torch-module", "cpu", "float32", 1_000_000), "wrong",
                                "gradient off"))
    svg = drawn([run], "phases", tmp_path)
    assert "WRONG" in svg and "torch-module (cpu)" in svg


def test_report_cli(tmp_path):
    from gdbench.files.results import write_json

    run = synthetic_run("cpu", CPU, phased=True)
    run.probe = {**run.probe, "curve": {"4096": 50e9, "1048576": 90e9, "1073741824": 20e9}}
    cpu = tmp_path / "cpu.json"
    write_json(run, cpu)
    gpu = write_run(tmp_path / "gpu.json", "cuda", GPU)
    out = tmp_path / "out" / "report.md"
    assert main(["report", str(cpu), str(gpu), "-o", str(out), "--size", "1e4"]) == 0
    text = out.read_text()
    for heading in ("## Plots", "### Fastest kernel at each size", "### Speedup over the",
                    "### Where each GPU kernel overtakes the best CPU kernel",
                    "### Launch-overhead floor"):
        assert heading in text
    assert "- torch-manual: from N = 1e6 on" in text
    assert "![step time against sample count](report-plots/scaling.png)" in text
    assert (tmp_path / "out" / "report-plots" / "phases.svg").exists()
    # every plot drawn is shown, the probe's curve among them, and nothing else
    linked = {line.split("(")[1].rstrip(")") for line in text.splitlines()
              if line.startswith("![")}
    pngs = {f"report-plots/{p.name}" for p in (tmp_path / "out" / "report-plots").glob("*.png")}
    assert linked == pngs and "report-plots/probe.png" in linked


def test_run_with_plot(tmp_path, gdbench_cli, monkeypatch):
    from gdbench.runs import sweep

    # no contention watch: a case that other work held back would be left out of the plots
    # (tested above), and this machine may be busy
    monkeypatch.setattr(sweep, "window_hooks", lambda device: [])
    result = gdbench_cli("run", "--device", "cpu", "--kernels", "numpy-manual", "--sizes",
                         "1e2,1e3", "--budget", "0.02", "--no-roofline", "--out",
                         tmp_path / "r.json", "--plot", tmp_path / "plots", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plots" / "scaling.png").exists()


@pytest.mark.parametrize("args,message", [
    (["plot", "nope.json", "-o", "x"], "nope.json: no such file"),
    (["report", "nope.json", "-o", "x.md"], "nope.json: no such file"),
    (["plot", "RESULT", "-o", "OUT", "--size", "1e2,1e3"], "--size takes one sample count"),
])
def test_cli_bad_input(tmp_path, capsys, args, message):
    path = write_run(tmp_path / "r.json", "cpu", CPU)
    args = [str(path) if a == "RESULT" else str(tmp_path / "p") if a == "OUT" else a for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_probe_curve_is_plotted(tmp_path):
    run = synthetic_run("cpu", CPU)
    run.probe = {**run.probe, "curve": {"4096": 50e9, "1048576": 90e9, "1073741824": 20e9},
                 "levels": {"L1d": 32768, "L2": 1 << 20, "L3": 32 << 20}}
    run.rooflines = {8000: [40e9], 800_000: [80e9], 8_000_000: [60e9]}
    assert "L3" in drawn([run], "probe", tmp_path)


def table_at_80_columns(kernels, sizes) -> str:
    """The default table of a synthetic run of ``kernels`` at ``sizes``, on an 80-column
    terminal."""
    from rich.console import Console

    from gdbench.analysis.tables import step_table

    run = synthetic_run("cpu", {(k, n): 1e-5 * (1 + n / 1e4) for k in kernels for n in sizes})
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(step_table(run, 80))
    return console.export_text()


def test_narrow_terminals_get_fewer_sizes_per_table():
    text = table_at_80_columns(("torch-manual", "torch-module"),
                               (100, 1000, 10_000, 100_000, 1_000_000, 10_000_000))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.count("torch-manual") >= 2 and text.count("torch-module") >= 2  # never cut
    assert "…" not in text
    assert all(f"N = {s}" in text for s in ("1e2", "1e3", "1e4", "1e5", "1e6", "1e7"))


def test_report_keeps_the_marks(tmp_path):
    noisy = write_run(tmp_path / "n.json", "cpu", CPU, spread=0.5, drift=0.3)
    out = tmp_path / "report.md"
    assert main(["report", str(noisy), "-o", str(out), "--no-plots"]) == 0
    text = out.read_text()
    assert "~" in text.split("## Findings")[0].split("| kernel |")[1]
    # --no-plots: the tables and findings, no plot and no reference to one
    assert "## Plots" not in text and ".png" not in text
    assert not (tmp_path / "report-plots").exists()


def test_report_tells_other_work_from_a_kernel_own_threads(tmp_path):
    from gdbench.files.results import write_json

    run = synthetic_run("cpu", {("numpy-manual", 100): 1e-5, ("jax-jit", 100): 2e-5})
    crowded = {"run_delay_fraction": 0.7, "others_cpu_per_wall": 0.0}
    run.cases[0] = held_back(run.cases[0])
    run.cases[1] = held_back(run.cases[1], crowded)
    path, out = tmp_path / "r.json", tmp_path / "r.md"
    write_json(run, path)
    assert main(["report", str(path), "-o", str(out), "--no-plots"]) == 0
    text = out.read_text()
    held, own = text.split("Cases measured while other work held them back:")[1].split(
        "Cases whose own threads outnumbered the CPUs")
    assert "numpy-manual" in held and "jax-jit" not in held
    assert "- jax-jit-cpu-float32-N1e2-D1: up to 70% of a window" in own


def test_the_default_table_has_one_line_per_cell_and_three_sizes_fit_80_columns():
    text = table_at_80_columns(("torch-compile", "numba-fused"), (100, 10_000, 1_000_000))
    rows = [line for line in text.splitlines() if "numba-fused" in line]
    assert len(rows) == 1 and rows[0].count("±") == 3  # one table, one line per cell
    assert all(len(line) <= 80 for line in text.splitlines())


def test_report_shows_the_source_the_energy_and_the_read_roofline(tmp_path):
    from gdbench.analysis.tables import cell
    from gdbench.files.results import write_json

    run = synthetic_run("cuda", GPU)
    run.environment["source"] = {"commit": "a" * 40, "uncommitted": ["gdbench/x.py"],
                                 "changes_sha256": "b" * 64, "files_sha256": "c" * 64}
    run.environment["energy"] = "NVML total energy"
    run.probe = {"device": "cuda", "nbytes": 2 << 30, "cache_bytes": 0,
                 "methods": {"torch-sum": 4.4e12, "torch-copy": 4.6e12}}
    window = {"joules": 0.5, "seconds": 0.1, "steps": 1000}
    run.cases[0] = replace(run.cases[0], readings={**run.cases[0].readings,
                                                   "energy": {"windows": [window] * 4}})
    path, out = tmp_path / "r.json", tmp_path / "r.md"
    write_json(run, path)
    assert main(["report", str(path), "-o", str(out), "--no-plots"]) == 0
    text = out.read_text()
    assert ("- source: commit aaaaaaaaaaaa + uncommitted changes to 1 file (sha256 bbbbbbbbbbbb);"
            " files sha256 cccccccccccc") in text
    assert "- energy: NVML total energy" in text
    # a copy reads and writes: it is never the roofline, however fast
    assert "roofline: 4.4e+03 GB/s read from memory (torch-sum) (a copy: 4.6e+03 GB/s" in text
    assert "| torch-manual-cuda-float32-N1e2-D1 | 500 µJ | 200,000 |" in text
    assert cell(run.cases[0]).splitlines()[-1] == "500 µJ/step"


def test_a_run_whose_every_case_was_contended_is_reported_without_plots(tmp_path, capsys):
    """Plots leave contended cases out: with nothing else left the report says so and exits 0,
    and the plot command says why in one line."""
    from gdbench.files.results import write_json

    run = synthetic_run("cpu", {("numpy-manual", 100): 1e-5})
    run.cases[0] = held_back(run.cases[0])
    assert run.cases[0].ok and not run.cases[0].reliable
    path, out = tmp_path / "r.json", tmp_path / "r.md"
    write_json(run, path)
    assert main(["report", str(path), "-o", str(out)]) == 0
    text = out.read_text()
    assert "## Plots\n\nNone: every timed case was held back by other work (contended)" in text
    assert not (tmp_path / "r-plots").exists()
    assert main(["plot", str(path), "-o", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "held back by other work" in err and len(err.strip().splitlines()) == 1


def test_a_run_whose_every_case_was_contended_writes_its_results_and_no_plots(tmp_path):
    """run --plot after a run on a busy machine: the results count, the plots say why not."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from gdbench.cli.run import _show

    run = synthetic_run("cpu", {("numpy-manual", 100): 1e-5})
    run.cases[0] = held_back(run.cases[0])
    args = SimpleNamespace(quiet=True, out=tmp_path / "r.json", csv=None,
                           plot=tmp_path / "plots", detail=False)
    err = io.StringIO()
    assert _show(args, run, Console(file=err, width=200)) == 0
    assert (f"no plots in {tmp_path / 'plots'}: every timed case was held back by other work"
            in err.getvalue())
    assert not any((tmp_path / "plots").glob("*.png"))
