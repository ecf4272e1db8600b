"""Data-parallel runs on real processes: gloo ranks on loopback, through the elastic agent of
``--nproc`` and through two ``torchrun`` node agents; and the failures that must end a run."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gdbench.analysis.tables import format_time
from gdbench.distributed.adapters import data_parallel_kernels
from gdbench.distributed.launch import launch_sizes
from gdbench.distributed.step import shard
from gdbench.files.paths import partial_path
from gdbench.files.results import read_json, write_json
from gdbench.kernels.registry import make_kernel
from tests.plugins import REPO, plugin_env

pytest.importorskip("torch.distributed", reason="torch is not installed")

RANK_KERNELS = """
import os, time
from gdbench.kernels.torch_manual import TorchManual

class SlowOnRanks(TorchManual):
    name = "slow-on-ranks"
    def update(self):
        super().update()
        if "RANK" in os.environ:  # a rank's window of 8 or more steps takes about a second
            time.sleep(0.05)

class DiesOnRank1(TorchManual):
    name = "dies-on-rank-1"
    def update(self):
        super().update()
        self.steps = getattr(self, "steps", 0) + 1
        if os.environ.get("RANK") == "1" and self.steps == 40:
            os._exit(3)

class StopsOnRank1(TorchManual):
    name = "stops-on-rank-1"
    def update(self):
        super().update()
        self.steps = getattr(self, "steps", 0) + 1
        if os.environ.get("RANK") == "1" and self.steps == 40:
            import signal
            os.kill(os.getpid(), signal.SIGSTOP)  # stopped: it cannot act on SIGTERM either

class HangsOnRank1(TorchManual):
    name = "hangs-on-rank-1"
    def update(self):
        super().update()
        self.steps = getattr(self, "steps", 0) + 1
        if os.environ.get("RANK") == "1" and self.steps == 40:
            time.sleep(3600)
"""


def gdbench(*args, env=None, cwd=None, timeout=240):
    env = env or dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "gdbench", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def test_weak_scaling_adds_p_times_each_size():
    assert launch_sizes([1000, 10], 2, weak=True) == [10, 20, 1000, 2000]
    assert launch_sizes([1000], 3, weak=False) == [1000]
    assert launch_sizes([1000], 1, weak=True) == [1000]


def test_shards_cover_the_samples_once():
    for n, world in [(10, 3), (1001, 2), (4, 4), (7, 1)]:
        bounds = [shard(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(stop - start == n // world for start, stop in bounds[:-1])


def test_two_ranks_through_the_launcher_verify_scale_and_report(tmp_path, gdbench_cli):
    """1 and 2 gloo ranks: every case verified on the full data, one results file, scaling
    (the DDP adapter on real ranks runs under torchrun below)."""
    out = tmp_path / "ranks.json"
    result = gdbench("run", "--device", "cpu", "--kernels", "torch-manual",
                     "--sizes", "1001", "--nproc", "1,2", "--budget", "0.04", "--windows", "2",
                     "--no-roofline", "--out", out, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = read_json(out)
    assert run.complete and run.settings["world_sizes"] == [1, 2]
    assert run.settings["dist_backend"] == "gloo"
    labels = {c.spec.label: c for c in run.cases}
    for ranks, n in ((1, 1001), (2, 1001), (2, 2002)):  # strong at 1001, weak at 2 x 1001
        case = labels[f"torch-manual-cpu-float32-N{n}-D1-P{ranks}"]
        assert case.ok, case.message  # ok: it agreed with the float64 reference first
        assert "allreduce" in case.samples.phases and case.windows == 2
        # every rank read the axes around its windows, and a window keeps their join
        assert [w["ranks"] for w in case.contention] == [ranks, ranks]
    assert labels["torch-manual-cpu-float32-N1001-D1"].ok  # the plain step, the baseline
    assert len(run.allreduce_floors[2]) == 2 and min(run.allreduce_floors[2]) > 0
    # the report of these times as if no other work had run (on two busy cores a case can be
    # contended; which cases then count is test_plot_report's scaling test)
    calm = tmp_path / "calm.json"
    write_json(replace(run, cases=[replace(c, readings={k: v for k, v in c.readings.items() if k != "contention"}) for c in run.cases]), calm)
    report = tmp_path / "report.md"
    assert gdbench_cli("report", calm, "-o", report, "--no-plots").returncode == 0
    text = report.read_text()
    assert "### Scaling across ranks" in text and "| torch-manual | 2 | weak | 1001 |" in text
    plain = labels["torch-manual-cpu-float32-N1001-D1"].summary().median
    one_rank = labels["torch-manual-cpu-float32-N1001-D1-P1"].summary().median
    row = next(line for line in text.splitlines() if line.startswith("| torch-manual | 2 | strong"))
    assert row.split("|")[5:7] == [f" {format_time(plain)} ", f" {format_time(one_rank)} "]


def free_port():
    """A free port on 127.0.0.1 below the kernel's ephemeral range: the agents bind it seconds
    after it is chosen (once torch is imported), and a port from that range could be handed in
    between to any socket that connects or binds port 0 (gloo's pairs, other tests' ranks)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = np.random.default_rng()
    for port in rng.permutation(np.arange(max(1024, low - 12288), low)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no free port below the ephemeral range")


def test_two_torchrun_node_agents_on_loopback(tmp_path):
    """--nnodes 2 with a c10d rendezvous on 127.0.0.1: the multi-node path, on one machine;
    nn.Linear's step under DistributedDataParallel, and a fused kernel's (Triton's
    interpreter) split at its sums."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TRITON_INTERPRET="1")
    hung = []
    for attempt in range(2):  # torchrun's agents now and then hang at the rendezvous's end
        command = [torchrun, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id",
                   f"gdbench-test-{os.getpid()}-{attempt}", "-m", "gdbench", "run", "--device",
                   "cpu", "--kernels", "torch-module,triton-fused", "--sizes", "1e3", "--budget",
                   "0.04", "--windows", "2", "--quiet", "--out", str(out)]
        agents = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=env, cwd=tmp_path, start_new_session=True)
                  for _ in range(2)]
        deadline = time.monotonic() + 150
        try:
            logs = [a.communicate(timeout=max(deadline - time.monotonic(), 1))[0]
                    for a in agents]
            # the other way torchrun's agents end at the rendezvous's end: an agent reads the
            # store after its peer has gone and aborts (SIGABRT); tried once more, as a hang is
            if (attempt == 0 and any(a.returncode for a in agents)
                    and any("recvValueWithTimeout failed" in log for log in logs)):
                hung.append(logs)
                continue
            break
        except subprocess.TimeoutExpired:
            for a in agents:  # the agents and their ranks
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(a.pid, signal.SIGKILL)
            hung.append([a.communicate()[0] for a in agents])
    else:
        pytest.fail(f"both attempts hung at the rendezvous: {hung}")
    assert [a.returncode for a in agents] == [0, 0], logs
    run = read_json(out)
    assert run.settings["world_size"] == 2 and len(run.settings["hosts"]) == 2
    assert [(c.spec.kernel, c.spec.ranks, c.status) for c in run.cases] == [
        ("torch-module", 2, "ok"), ("triton-fused", 2, "ok")]
    module, fused = run.cases
    assert module.samples.phases == ("forward", "backward", "allreduce", "update")
    assert fused.samples.phases == ("sums", "allreduce", "update")
    assert fused.spec.label.endswith("-P2")


def rank_kernels_env(folder):
    return plugin_env(folder, "rank_kernels", {"dies-on-rank-1": "DiesOnRank1",
                                               "hangs-on-rank-1": "HangsOnRank1",
                                               "stops-on-rank-1": "StopsOnRank1",
                                               "slow-on-ranks": "SlowOnRanks"}, RANK_KERNELS)


def failing_run(kernel, folder, env):
    """``gdbench run`` of ``kernel`` on 2 ranks, started; its results go to r.json."""
    return subprocess.Popen([sys.executable, "-m", "gdbench", "run", "--device", "cpu",
                             "--kernels", kernel, "--sizes", "1e3", "--nproc", "2",
                             "--budget", "0.05", "--windows", "2", "--dist-timeout", "5",
                             "--out", str(folder / "r.json"), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=folder)


def test_a_rank_that_dies_hangs_or_stops_ends_the_run_in_bounded_time(tmp_path):
    """Three runs side by side, as the time of two is mostly the 5 s the other rank waits:
    rank 1 exits, sleeps, or is stopped (SIGSTOP, so that it cannot act on SIGTERM either).
    Each ends with one line naming the rank, and keeps the plain step measured first."""
    env, start, runs = rank_kernels_env(tmp_path), time.perf_counter(), {}
    for kernel in ("dies-on-rank-1", "hangs-on-rank-1", "stops-on-rank-1"):
        (tmp_path / kernel).mkdir()
        runs[kernel] = failing_run(kernel, tmp_path / kernel, env)
    for kernel, run in runs.items():
        stderr = run.communicate(timeout=240)[1]
        assert time.perf_counter() - start < 90
        assert run.returncode == 1, stderr
        [line] = stderr.strip().splitlines()
        if kernel == "dies-on-rank-1":
            assert line.startswith("gdbench run: rank 1 of 2 failed (exit code 3)"), line
        else:  # rank 0 timed out waiting for it: the rank named is the one that hung
            assert line.startswith("gdbench run: rank 1 of 2 stopped answering: rank 0 timed "
                                   "out waiting for it after 5 s"), line
        out = tmp_path / kernel / "r.json"
        kept = read_json(partial_path(out))
        assert (kernel, 0) in {(c.spec.kernel, c.spec.ranks) for c in kept.cases}
        assert not kept.settings["weak_scaling"] and not out.exists()


def test_a_failed_launch_keeps_the_world_sizes_finished_before_it(tmp_path, monkeypatch):
    """--nproc 1,2 whose 2-rank launch fails: the plain step and the 1-rank cases measured
    before it are in the partial file, and weak scaling is on (one rank among the world
    sizes). torch's agent is faked here; the real ranks that fail are above."""
    from torch.distributed.launcher import api

    from gdbench.distributed.launch import RankFailure, launch
    from gdbench.files.results import Output
    from gdbench.runs.settings import Settings
    from tests.synthetic import synthetic_run

    sizes = []

    def fake_launch(config, entrypoint):
        def ranks(*args):  # the ranks' settings, whole, in the file the launcher wrote
            given = json.loads(Path(args[args.index("--settings-file") + 1]).read_text())
            sizes.append(given["sizes"])
            if config.nproc_per_node == 2:
                raise RuntimeError("rank 1 died")
            run = synthetic_run("cpu", {("torch-manual", 1000): 1e-5})
            run.cases = [replace(c, spec=replace(c.spec, ranks=1)) for c in run.cases]
            write_json(run, args[args.index("--out") + 1])

        return ranks

    monkeypatch.setattr(api, "elastic_launch", fake_launch)
    settings = Settings(device="cpu", kernels=("torch-manual",), sizes=(1000,), budget=0.02,
                        windows=1, roofline=False).checked()
    out = tmp_path / "r.json"
    with pytest.raises(RankFailure, match="2 ranks: RuntimeError: rank 1 died"):
        launch(settings, [1, 2], Output(out))
    assert sizes == [[1000], [1000, 2000]]  # strong, then strong and weak
    kept = read_json(partial_path(out))
    assert [(c.spec.kernel, c.spec.ranks) for c in kept.cases] == [
        ("torch-manual", 0), ("torch-manual", 1)]
    assert kept.settings["weak_scaling"] and not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--nproc", "0"], "--nproc must be at least 1"),
    (["--nproc", "two"], "is not a list of whole numbers"),
    (["--nproc", "2", "--dist-backend", "nccl"], "NCCL all-reduces CUDA tensors"),
    (["--nproc", "2", "--kernels", "numpy-manual"], "cannot run data-parallel"),
    (["--nproc", "2", "--cold"], "--cold does not go with a data-parallel run"),
    (["--nproc", "2", "--dist-port", "PORT"], "is in use"),
])
def test_bad_distributed_arguments_are_one_line(tmp_path, args, message, gdbench_cli):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = [str(port) if a == "PORT" else a for a in args]
        result = gdbench_cli("run", "--device", "cpu", "--sizes", "1e3", "--out",
                             tmp_path / "r.json", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_list_says_which_kernels_run_data_parallel(gdbench_cli):
    result = gdbench_cli("list")
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("│")}
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    column = [cell.strip() for cell in header.split("┃")].index("data-parallel")
    assert rows["torch-module"].split("│")[column].strip() == "yes"
    assert rows["numpy-manual"].split("│")[column].strip() == "no"


class ThreadWorld:
    """``torch.distributed`` for ranks that are threads of this process: all_reduce sums the
    ranks' tensors in place, in rank order, once every rank has called it."""

    def __init__(self, world):
        self.barrier, self.tensors = threading.Barrier(world, timeout=30), {}

    def rank(self, rank):
        world = self

        class Rank:
            @staticmethod
            def all_reduce(tensor):
                world.tensors[rank] = tensor.clone()
                world.barrier.wait()
                tensor.copy_(sum(world.tensors[r] for r in sorted(world.tensors)))
                world.barrier.wait()

        return Rank


# every data-parallel kernel here but torch-module: DistributedDataParallel needs a real process
# group, and runs under the torchrun agents above
THREAD_RANKS = [n for n in data_parallel_kernels("cpu", "float32") if n != "torch-module"]


@pytest.mark.parametrize("name", THREAD_RANKS)
def test_ranks_step_as_one_process_on_all_the_samples(name):
    """Two ranks' steps, all-reduced, against the float64 step on all the samples: the loss
    and gradient tensors weighted by each shard's share, or a fused kernel's sums."""
    from gdbench.core.reference import descend, loss_and_grad, tolerance
    from gdbench.distributed.step import DataParallel

    rng = np.random.default_rng(7)
    n, d, steps = 1001, 3, 5
    x = rng.standard_normal((n, d)).astype("float32")
    y = (x @ rng.uniform(-3, 3, d) + rng.standard_normal(n)).astype("float32")
    w0 = rng.uniform(-1, 1, d)
    world = ThreadWorld(2)
    ranks = []
    for rank in range(2):
        dp = DataParallel(make_kernel(name, "cpu"), rank, 2)
        dp.dist = world.rank(rank)
        dp.prepare(x, y, w0=w0, lr=0.01)
        ranks.append(dp)

    errors, computing = [], threading.Lock()

    def run(dp):
        try:
            for _ in range(steps):
                for phase in dp.phases:  # one rank computes at a time: Triton's interpreter
                    if phase == "allreduce":  # is not safe in two threads at once
                        dp.allreduce()
                        continue
                    with computing:
                        getattr(dp, phase)()
        except BaseException as exc:  # a rank's failure fails the test, and frees the other
            errors.append(exc)
            world.barrier.abort()

    threads = [threading.Thread(target=run, args=(dp,)) for dp in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    x64 = x.astype(np.float64)
    rtol = tolerance("float32", n)
    loss, grad, scale = loss_and_grad(x64, y, descend(x64, y, w0, 0.01, steps - 1))
    expected = descend(x64, y, w0, 0.01, steps)
    for dp in ranks:
        assert dp.phases == (("sums", "allreduce", "update") if dp.fused else
                             ("forward", "backward", "allreduce", "update"))
        assert dp.inner.loss == pytest.approx(loss, rel=rtol)
        np.testing.assert_allclose(dp.inner.grad, grad, rtol=0,
                                   atol=rtol * np.max(np.abs(grad) + scale))
        np.testing.assert_allclose(dp.inner.weight, expected, rtol=10 * rtol, atol=10 * rtol)


@pytest.mark.parametrize("signal_number,status,word", [(signal.SIGINT, 130, "interrupted"),
                                                       (signal.SIGTERM, 143, "terminated")])
def test_the_agents_signal_is_the_interrupt_of_a_plain_run(signal_number, status, word):
    """What the launcher raises for the agent's SignalException: a KeyboardInterrupt with the
    status and word of the signal (the run below sends SIGINT to real ranks)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException

    from gdbench.distributed.launch import _stopped

    stop = _stopped(SignalException(f"Process got signal: {signal_number}", signal_number))
    assert isinstance(stop, KeyboardInterrupt) and stop.status == status
    assert str(stop) == word


def test_a_signal_stops_a_data_parallel_run_as_it_stops_a_plain_one(tmp_path):
    """Ctrl-C, as a terminal sends it to the whole process group, once the two ranks have
    measured a window: the plain step and the ranks' windows so far are kept. The kernel's
    steps sleep on the ranks alone, so that the plain step takes a moment and the ranks' 20
    windows about 20 s, while the machine is left to the other tests."""
    out = tmp_path / "r.json"
    command = [sys.executable, "-m", "gdbench", "run", "--device", "cpu", "--kernels",
               "slow-on-ranks", "--sizes", "1e3", "--nproc", "2", "--budget", "0.2",
               "--windows", "20", "--no-roofline", "--out", str(out)]
    # TMPDIR: the launcher's folder for the ranks' files is in tmp_path, to be watched
    env = dict(rank_kernels_env(tmp_path), TMPDIR=str(tmp_path))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, cwd=tmp_path, start_new_session=True, env=env)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("gdbench-ranks-*/ranks-2.partial.json")):  # a window saved
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends Ctrl-C to the whole group
    lines = process.stderr.read().strip().splitlines()
    assert process.wait(timeout=60) == 130, lines
    assert lines[:-1] == ["measuring the plain step in one process ...", "starting 2 ranks ..."]
    partial = partial_path(out)
    assert lines[-1].startswith("gdbench run: interrupted: ") and str(partial) in lines[-1]
    assert not out.exists()
    kept = read_json(partial)
    assert [c.spec.ranks for c in kept.cases] == [0, 2] and kept.cases[1].windows >= 1


def test_a_failed_launch_stops_its_other_ranks_within_the_shutdown_time(monkeypatch):
    """torch's process context closes the other ranks of a failed launch with a 30 s default;
    within the launch that wait is SHUTDOWN_S, so a stopped rank is killed a few seconds on."""
    from torch.distributed.elastic.multiprocessing.api import PContext

    from gdbench.distributed.launch import SHUTDOWN_S, _failed_ranks_stopped_within

    waits = []
    monkeypatch.setattr(PContext, "close", lambda self, death_sig=None, timeout=30:
                        waits.append((death_sig, timeout)))
    with _failed_ranks_stopped_within(SHUTDOWN_S):
        PContext.close(None)  # as SubprocessContext._poll calls it when a rank fails
        PContext.close(None, signal.SIGINT, 60)
    PContext.close(None)
    assert waits == [(None, SHUTDOWN_S), (signal.SIGINT, SHUTDOWN_S), (None, 30)]
