"""gdbench converge: the optimum, the learning rates, how descents end, and the command."""

import json
import math

import numpy as np
import pytest

import gdbench
from gdbench.files.results import read_converge
from gdbench.runs.converge import converge, descend, learning_rate, optimum, parse_rates, thin
from gdbench.runs.settings import ConvergeSettings
from tests.conftest import kernels_on


def test_optimum_is_the_least_squares_solution():
    x, y = gdbench.make_problem(20_001, 3, "float32", seed=3)
    opt = optimum(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    w = np.linalg.lstsq(x64, y64, rcond=None)[0]
    np.testing.assert_allclose(opt.w, w, rtol=1e-10)
    assert opt.loss == pytest.approx(np.mean((x64 @ w - y64) ** 2), rel=1e-10)
    assert opt.curvature == pytest.approx(2 * np.linalg.eigvalsh(x64.T @ x64 / len(y))[-1])


def test_parse_rates():
    assert parse_rates("tutorial, curvature,0.1") == ["tutorial", "curvature", 0.1]
    for text, match in [("fast", "neither a number nor one of tutorial, curvature"),
                        ("-1", "not a positive number"), ("", "no learning rate")]:
        with pytest.raises(ValueError, match=match):
            parse_rates(text)


def test_steps_match_the_contraction_of_gradient_descent():
    """With one feature the loss above the optimum shrinks by (1 - lr·L)² a step: the descent
    takes the steps that predicts (the loss read after step k is that of the weights before
    it, so one more)."""
    x, y = gdbench.make_problem(10_000, 1, "float64", seed=1)
    opt = optimum(x, y)
    lr, tol = learning_rate("tutorial", opt), 1e-6
    excess0 = (np.mean(y.astype(np.float64) ** 2) - opt.loss) / opt.loss
    predicted = math.ceil(math.log(tol / excess0) / (2 * math.log(1 - lr * opt.curvature))) + 1
    d = descend(gdbench.make_kernel("numpy-manual", "cpu", "float64"), x, y, opt, "tutorial",
                lr, tol)
    assert d.status == "converged" and d.excess <= tol
    assert abs(d.steps - predicted) <= 1, (d.steps, predicted)
    # the curvature's rate is Newton's step with one feature: the optimum in one step
    fast = descend(gdbench.make_kernel("numpy-manual", "cpu", "float64"), x, y, opt,
                   "curvature", learning_rate("curvature", opt), tol)
    assert fast.status == "converged" and fast.steps == 2 and fast.weight_error < 1e-10


@pytest.mark.skipif("torch-manual" not in kernels_on("cpu"), reason="torch is not installed")
def test_bfloat16_stalls_and_every_descent_is_bounded():
    x, y = gdbench.make_problem(10_000, 1, "float32")
    opt = optimum(x, y)
    kernel = gdbench.make_kernel("torch-manual", "cpu", "bfloat16")
    stalled = descend(kernel, x, y, opt, "tutorial", 0.01, patience=50)
    # bfloat16 weights stop moving once lr·grad is below half their spacing
    assert stalled.status == "stalled" and stalled.excess > 1e-3
    assert "no closer for 50 steps" in stalled.message
    capped = descend(gdbench.make_kernel("numpy-manual"), x, y, opt, "tutorial", 0.01,
                     max_steps=10)
    assert (capped.status, capped.steps) == ("max-steps", 10)
    timed = descend(gdbench.make_kernel("numpy-manual"), x, y, opt, "tutorial", 1e-6,
                    max_seconds=0.05)
    assert timed.status == "max-time" and 0.05 <= timed.seconds < 1
    diverged = descend(gdbench.make_kernel("numpy-manual"), x, y, opt, "x", 5.0)
    assert diverged.status == "diverged" and diverged.steps < 200


def test_thin_keeps_the_first_and_last_readings():
    trace = [[k, k * 1e-3, 1.0 / k] for k in range(1, 10_001)]
    kept = thin(trace, 50)
    assert len(kept) <= 50 and kept[0] == trace[0] and kept[-1] == trace[-1]


def test_converge_records_descents_and_direct_solves(tmp_path):
    saved = []
    result = converge(ConvergeSettings("cpu", ("numpy-manual", "numba-fused"), (1000, 5000)),
                      save=lambda r: saved.append(len(r.descents)))
    assert result.complete and saved[-1] == 8
    assert [(d.kernel, d.n_samples, d.rule) for d in result.descents[:4]] == [
        ("numpy-manual", 1000, "tutorial"), ("numpy-manual", 1000, "curvature"),
        ("numba-fused", 1000, "tutorial"), ("numba-fused", 1000, "curvature")]
    assert all(d.status == "converged" for d in result.descents)
    assert [s["method"] for s in result.direct] == ["numpy.linalg.lstsq"] * 2
    assert all(s["excess"] < 1e-6 and s["seconds"] > 0 for s in result.direct)


@pytest.fixture
def cli(gdbench_cli):
    return gdbench_cli


def test_cli_converge_table_json_plot_and_report(tmp_path, cli):
    out = tmp_path / "c.json"
    result = cli("converge", "--device", "cpu", "--kernels", "numpy-manual", "--sizes", "1e3",
                 "--dtype", "float32,float16", "--out", out, "--plot", tmp_path / "plots",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "N = 1e3 on cpu" in result.stdout and "direct solve" in result.stdout
    assert "numpy-manual fp16" in result.stdout
    raw = json.loads(out.read_text())
    assert raw["kind"] == "converge" and raw["complete"] and len(raw["descents"]) == 4
    assert read_converge(out).descents[0].status == "converged"
    assert (tmp_path / "plots" / "converge-N1e3.png").exists()
    report = cli("report", out, "-o", tmp_path / "r.md", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "r.md").read_text()
    assert "# gdbench converge report" in text and "| numpy-manual | tutorial (0.01) |" in text
    assert "![converge-N1e3](r-plots/converge-N1e3.png)" in text
    assert (tmp_path / "r-plots" / "converge-N1e3.png").exists()
    bare = cli("report", out, "-o", tmp_path / "bare.md", "--no-plots", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert (tmp_path / "bare.md").read_text().rstrip() == text.split("![")[0].rstrip()
    assert not (tmp_path / "bare-plots").exists()
    run_file = tmp_path / "run.json"
    assert cli("run", "--device", "cpu", "--kernels", "numpy-manual", "--sizes", "100",
               "--budget", "0.02", "--no-roofline", "--out", run_file, cwd=tmp_path).returncode == 0
    mixed = cli("plot", out, run_file, "-o", tmp_path / "p", cwd=tmp_path)
    assert mixed.returncode == 2 and "plots and reports of their own" in mixed.stderr


@pytest.mark.parametrize("args,message", [
    (["--tol", "2"], "tol must be between 0 and 1"),
    (["--lr", "fast"], "learning rate 'fast' is neither"),
    (["--max-steps", "0"], "max_steps must be a whole number"),
    (["--check-every", "0"], "check_every must be a whole number"),
    (["--kernels", "nope"], "unknown kernel 'nope'"),
])
def test_cli_converge_bad_arguments(args, message, tmp_path, cli):
    result = cli("converge", "--device", "cpu", "--kernels", "numpy-manual", *args,
                 "--out", tmp_path / "c.json", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_converge_settings_are_checked_once_and_recorded():
    s = ConvergeSettings("cpu", ("numpy-manual", "numpy-manual"), (5000, 1000),
                         dtypes=("fp32",), rates=("tutorial", 0.1, "tutorial")).checked()
    assert s.sizes == (1000, 5000) and s.kernels == ("numpy-manual",)
    assert s.dtypes == ("float32",) and s.rates == ("tutorial", 0.1) and s.check_every == 1
    record = s.record(skipped=[])
    assert record["dtype"] == "float32" and record["rates"] == ["tutorial", "0.1"]
    with pytest.raises(ValueError, match="more samples than features"):
        ConvergeSettings("cpu", sizes=(3,), n_features=3).checked()
    with pytest.raises(ValueError, match="check_every must be a whole number"):
        ConvergeSettings("cpu", check_every=0).checked()
