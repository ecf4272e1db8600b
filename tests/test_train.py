"""The tutorial's numbers, replayed on every CPU kernel, through the library and the CLI."""

import subprocess
import sys

import pytest

import gdbench
from gdbench.train import predict, train
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


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "gdbench", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_the_tutorial():
    out = run_cli("train").stdout.splitlines()
    assert out[0] == "Prediction before training: f(5) = 0.000"
    assert out[1] == "epoch 1: w = 0.300, loss = 30.00000000"
    assert len(out) == 22
    assert out[-1] == "Prediction after training: f(5) = 9.612"


def test_cli_hundred_iterations_every_tenth():
    result = run_cli("train", "--kernel", kernels_on("cpu")[-1], "--iters", "100",
                     "--print-every", "10")
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"epoch {e}" for e in range(1, 101, 10)]
    assert lines[-1] == "Prediction after training: f(5) = 10.000"
