"""The tutorial's numbers, replayed on every CPU kernel, through the library and the CLI."""


import pytest

import gdbench
from gdbench.runs.train import predict, train
from tests.conftest import kernels_on


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", kernels_on("cpu"))
def test_tutorial_numbers(name, dtype):
    epochs = list(train(gdbench.make_kernel(name, "cpu", dtype), iters=100))
    assert f"{epochs[0].w:.3f}" == "0.300"
    assert f"{epochs[0].loss:.8f}" == "30.00000000"
    assert f"{predict(epochs[19].w):.3f}" == "9.612"
    assert f"{predict(epochs[99].w):.3f}" == "10.000"
    # w_k = 2 (1 - 0.85^k): each step removes 15% of the remaining error (lr * 2 * mean(x^2)).
    assert epochs[19].w == pytest.approx(2 * (1 - 0.85**20), rel=1e-5)


@pytest.fixture
def run_cli(gdbench_cli):
    return gdbench_cli


def test_cli_prints_the_tutorial(run_cli):
    out = run_cli("train").stdout.splitlines()
    assert out[0] == "Prediction before training: f(5) = 0.000"
    assert out[1] == "epoch 1: w = 0.300, loss = 30.00000000"
    assert len(out) == 22
    assert out[-1] == "Prediction after training: f(5) = 9.612"


def test_cli_hundred_iterations_every_tenth(run_cli):
    result = run_cli("train", "--kernel", kernels_on("cpu")[-1], "--iters", "100",
                     "--print-every", "10")
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:-1]] == [
        f"epoch {e}" for e in (*range(1, 101, 10), 100)]  # the last epoch is always shown
    assert lines[-1] == "Prediction after training: f(5) = 10.000"


@pytest.mark.parametrize("name", kernels_on("cpu"))
def test_divergence_stops_training_at_the_epoch_it_happened(name):
    epochs = list(train(gdbench.make_kernel(name, "cpu", "float32"), iters=1000, lr=10))
    assert not epochs[-1].finite and all(e.finite for e in epochs[:-1])
    assert len(epochs) < 1000


def test_cli_says_where_training_diverged(run_cli):
    result = run_cli("train", "--lr", "10", "--iters", "100", "--print-every", "50")
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    epoch = int(last.split(":")[0].split()[1])
    assert result.stderr.strip() == (f"gdbench train: diverged at epoch {epoch}: the loss is "
                                     "inf (the learning rate 10.0 is too large for this data)")
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
