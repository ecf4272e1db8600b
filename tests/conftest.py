"""Shared fixtures: which kernels run here, and the CUDA marker's skip."""

import os
import shutil
import sys

import pytest

# Triton kernels run on CPU tensors through Triton's interpreter where there is no GPU; the
# variable must be set before triton is first imported.
if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests start about a hundred Python processes from this checkout (commands, ranks, workers,
# the GPU script's stages): with bytecode caching off (PYTHONDONTWRITEBYTECODE, set in many
# container images) each compiled gdbench's modules again: 196 s against 185 s, in one pair of
# runs on the 2-core VM.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# pytest-xdist runs a worker per core, and each worker's thread pools (OpenMP's in torch and
# Numba, OpenBLAS's in NumPy) and the processes it starts take a thread per core as well:
# threads outnumber cores, and a pool thread that has finished its share spins, by default, on
# a core another worker is waiting for. In the workers, where nothing is timed (pytest-benchmark
# is off under xdist), finished threads sleep instead (OpenBLAS's after its shortest wait, 2^4
# cycles). CPU of the kernel, sweep and round tests on the 2-core VM, two runs each: 92-94 s
# spinning, 77-81 s with OpenMP's threads asleep, 68 s with OpenBLAS's too. Set before the
# libraries load; an explicit setting is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import gdbench  # noqa: E402


def kernels_on(device: str) -> list[str]:
    return [k.name for k in gdbench.list_kernels(device) if k.available_on(device)]


def cuda_present() -> bool:
    from gdbench.core.devices import resolve_device

    return resolve_device("auto") == "cuda"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n``, workers steal tests from each other (pytest-xdist's worksteal) unless
    ``--dist`` names a mode other than the default: a few tests run for tens of seconds (ranks
    in processes of their own, the GPU script's stages on the CPU), and behind them a worker
    with a share handed out in advance sat idle while the other worked through its own."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import WorkStealingScheduling

    return WorkStealingScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if any("cuda" in item.keywords for item in items) and not cuda_present():
        skip = pytest.mark.skip(reason="no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


class Ran:
    """What a command in this process gave: its exit status and what it printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def gdbench_cli(capsys, monkeypatch):
    """``gdbench ARGS`` run in this process through ``cli.main``, from ``cwd`` if given: as
    ``python -m gdbench ARGS`` would, without starting an interpreter and importing the
    backends again (a few seconds each). An exception that escaped would fail the test."""
    from gdbench import cli

    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as stop:  # argparse's usage errors and --help
            code = stop.code
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run
