"""Nothing destroyed, nothing misread: files moved aside only when regular, runs with no timed
case, contended cases, readable numbers, dtype spellings and shadowed plugins."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest

import gdbench
from gdbench import cli
from gdbench.analysis import findings
from gdbench.analysis.compare import compare
from gdbench.analysis.tables import format_precision, format_time, step_table
from gdbench.files.paths import check_target, holds_results, move_aside, partial_path
from gdbench.files.results import Output, read_json, write_json
from tests.plugins import plugin_env
from tests.synthetic import synthetic_run

BUSY = {"run_delay_fraction": 0.6, "others_cpu_per_wall": 1.0}


def test_only_a_regular_file_is_moved_aside(tmp_path):
    regular = tmp_path / "r.json"
    regular.write_text("earlier\n")
    assert move_aside(regular) == tmp_path / "r.1.json" and not regular.exists()
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="is a directory: only a regular file"):
        move_aside(tmp_path / "d")
    os.symlink(tmp_path / "r.1.json", tmp_path / "link")
    with pytest.raises(ValueError, match="symbolic link"):
        move_aside(tmp_path / "link")
    assert (tmp_path / "d").is_dir() and (tmp_path / "link").is_symlink()
    assert move_aside(tmp_path / "nothing") is None


def test_a_numbered_name_skips_a_dangling_link(tmp_path):
    (tmp_path / "r.json").write_text("x")
    os.symlink(tmp_path / "missing", tmp_path / "r.1.json")
    assert move_aside(tmp_path / "r.json") == tmp_path / "r.2.json"
    assert (tmp_path / "r.1.json").is_symlink()


def test_report_never_replaces_results_but_replaces_its_own_markdown(tmp_path, capsys):
    run = tmp_path / "run.json"
    write_json(synthetic_run("cpu", {("numpy-manual", 100): 1e-5}), run)
    assert holds_results(run)
    assert cli.main(["report", str(run), "-o", str(run)]) == 2
    assert read_json(run).cases  # still the run
    md = tmp_path / "r.md"
    md.write_text("an older report\n")
    assert cli.main(["report", str(run), "-o", str(md), "--no-plots"]) == 0
    assert md.read_text().startswith("# gdbench report")


def test_check_target_accepts_nothing_or_a_regular_file(tmp_path):
    assert check_target(tmp_path / "new.json", "--out") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    assert check_target(tmp_path / "old.json", "--out") == tmp_path / "old.json"


def test_a_run_with_nothing_measured_leaves_no_partial_file(tmp_path):
    out = tmp_path / "r.json"
    output = Output(out)
    output.save(synthetic_run("cpu", {}))
    assert partial_path(out).exists()
    assert output.abandon() is None and not partial_path(out).exists()


def test_an_earlier_partial_file_with_no_case_is_not_kept(tmp_path):
    out = tmp_path / "r.json"
    empty = synthetic_run("cpu", {})
    empty.complete = False
    write_json(empty, partial_path(out))
    measured = synthetic_run("cpu", {("numpy-manual", 100): 1e-5})
    measured.complete = False
    output = Output(out)
    assert not partial_path(out).exists() and output.moved == []
    write_json(measured, partial_path(out))
    output = Output(out)
    assert output.moved == [tmp_path / "r.partial.1.json"]


def test_noise_moves_an_earlier_noise_floor_aside(tmp_path):
    args = ["noise", "--device", "cpu", "--kernels", "numpy-manual", "--sizes", "100",
            "--budget", "0.02", "--windows", "2", "--no-memory", "--quiet",
            "--out-dir", str(tmp_path)]
    assert cli.main(args) == 0
    first = json.loads((tmp_path / "noise.json").read_text())
    assert cli.main(args) == 0
    assert json.loads((tmp_path / "noise.1.json").read_text()) == first
    assert (tmp_path / "noise-1.1.json").exists() and (tmp_path / "noise-2.1.json").exists()


def test_a_run_with_no_timed_case_exits_1_and_report_and_plot_list_its_failures(tmp_path,
                                                                                capsys):
    out = tmp_path / "r.json"
    status = cli.main(["run", "--device", "cpu", "--kernels", "numpy-manual", "--sizes", "1e30",
                       "--budget", "0.01", "--no-roofline", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and "no case was timed (1 failed)" in err
    run = read_json(out)
    assert run.complete and run.cases[0].status in ("oom", "error")
    assert cli.main(["plot", str(out), "-o", str(tmp_path / "plots")]) == 1
    err = capsys.readouterr().err
    assert "nothing to plot" in err and "numpy-manual-cpu-float32-N1e30" in err
    report = tmp_path / "report.md"
    assert cli.main(["report", str(out), "-o", str(report)]) == 0
    text = report.read_text()
    assert "Cases not timed:" in text and "N1e30" in text and "No case was timed" in text


def contended_run(seed=0):
    run = synthetic_run("cpu", {("fast", 100): 1e-5, ("held-back", 100): 1e-2}, seed=seed)
    run.cases[1] = replace(run.cases[1], readings={**run.cases[1].readings, "contention": [BUSY] * 4})
    return run


def test_a_contended_case_is_not_shown_as_a_result():
    run = contended_run()
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(step_table(run, 200))
    text = console.export_text()
    row = next(line for line in text.splitlines() if "held-back" in line)
    assert "contended" in row and "ms" not in row
    assert [c.spec.kernel for c in findings.fastest([run]).values()] == ["fast"]


def test_compare_calls_a_contended_case_ambiguous(tmp_path):
    base, new = tmp_path / "a.json", tmp_path / "b.json"
    write_json(synthetic_run("cpu", {("fast", 100): 1e-5, ("held-back", 100): 1e-5}), base)
    write_json(contended_run(seed=1), new)
    rows = {(r.key[0], r.key[-1]): r for r in compare(base, new)}
    row = rows[("held-back", "step")]
    assert row.verdict == "AMBIGUOUS" and row.why.startswith("contended")
    assert rows[("fast", "step")].verdict == "SAME"


@pytest.mark.parametrize("seconds,text", [(999.6e-6, "1.00 ms"), (1e-3, "1.00 ms"),
                                          (12.34e-6, "12.3 µs"), (123.4e-9, "123 ns"),
                                          (2.5, "2.50 s"), (0.0999999, "100 ms")])
def test_a_time_is_shown_in_its_own_unit(seconds, text):
    assert format_time(seconds) == text


@pytest.mark.parametrize("precision,text", [(0.009, "±0.9%"), (0.5, "±50%"),
                                            (2.1, "×/÷3.1"), (193.2, "×/÷194"),
                                            (np.inf, "±unknown")])
def test_an_interval_wider_than_its_median_is_a_factor(precision, text):
    assert format_precision(precision) == text


def test_the_dtype_spellings_the_tables_print_are_accepted():
    assert gdbench.make_kernel("numpy-manual", "cpu", "fp64").dtype == "float64"
    args = cli.build_parser().parse_args(["run", "--dtype", "fp32,bf16,fp16"])
    assert args.dtype == "float32,bfloat16,float16"


def test_a_plugin_named_like_a_built_in_kernel_is_listed_with_why(tmp_path, monkeypatch,
                                                                 gdbench_cli):
    plugin_env(tmp_path, "shadow", {"numpy-manual": "Shadow"},
               "from gdbench.kernels.numpy_manual import NumpyManual\n"
               "class Shadow(NumpyManual):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = gdbench_cli("list")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "numpy-manual (plugin)" in line)
    assert "not loaded" in row


def test_more_ranks_than_cpus_gives_a_warning(monkeypatch, tmp_path, capsys):
    pytest.importorskip("torch.distributed", reason="torch is not installed")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    status = cli.main(["run", "--device", "cpu", "--kernels", "torch-manual", "--sizes", "100",
                       "--nproc", "2", "--dist-backend", "nccl", "--out",
                       str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert status == 2  # stopped by NCCL on the CPU, after the warning
    assert "warning: 2 ranks on 1 CPUs" in err
