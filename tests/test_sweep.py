"""The harness: sizes, records, failures kept, interrupted runs, files, and trust in its clock."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import pytest

import gdbench
from gdbench.files.paths import partial_path
from gdbench.files.results import read_json
from gdbench.kernels import registry
from gdbench.runs import sweep
from gdbench.runs.ab.records import AbSettings
from gdbench.runs.settings import Checked, ConvergeSettings, Settings, default_sizes
from tests.fake_kernels import FAKES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(registry, "BUILTIN", {**registry.BUILTIN, **FAKES})
    # Ctrl-C raises KeyboardInterrupt even where the tests were started in the background,
    # which makes a shell ignore SIGINT (and Python inherits that)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("text,sizes", [
    ("1e2,1e4,1e6", [100, 10_000, 1_000_000]),
    ("1e2:1e5", [100, 1000, 10_000, 100_000]),
    ("5", [5]),
    ("1000, 10,1e3", [10, 1000]),
    ("2e3:2e5", [2000, 20_000, 200_000]),
])
def test_parse_sizes(text, sizes):
    assert sweep.parse_sizes(text) == sizes


@pytest.mark.parametrize("text,match", [
    ("abc", "not a number"), ("0", "positive whole"), ("-1e3", "positive whole"),
    ("1.5", "positive whole"), ("1e6:1e3", "ends below"), ("", "no sizes"), ("nan", "positive"),
])
def test_parse_sizes_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        sweep.parse_sizes(text)


@pytest.mark.parametrize("sizes", [[], [0], [1.5], [-3]])
def test_run_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must be positive whole numbers"):
        gdbench.run("cpu", ["numpy-manual"], sizes, roofline=False)


def test_default_sizes():
    assert default_sizes("cpu") == tuple(10**k for k in range(2, 8))
    assert default_sizes("cuda") == tuple(10**k for k in range(2, 9))


def test_run_records_every_case(tmp_path):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    result = gdbench.run("cpu", ["numpy-manual", "torch-manual"], [100, 5000], n_features=2,
                         budget=0.05, max_windows=4, out=out, csv=csv, probe_bytes=4 << 20)
    assert result.complete
    assert [(c.spec.kernel, c.spec.n_samples) for c in result.cases] == [
        ("numpy-manual", 100), ("torch-manual", 100), ("numpy-manual", 5000), ("torch-manual", 5000)]
    for case in result.cases:
        assert case.ok, case.message
        step = case.summary()
        assert step.n >= 5 and 0 < step.min <= step.median
        assert case.samples.device.shape == (step.n, 3)
        assert case.warmup_s > 0 and case.spec.bytes_min == case.spec.n_samples * 3 * 4
        assert case.bandwidth == pytest.approx(case.spec.bytes_min / step.median)
    saved = read_json(out)
    assert saved.complete and len(saved.cases) == 4
    np.testing.assert_array_equal(saved.cases[0].samples.device, result.cases[0].samples.device)
    raw = json.loads(out.read_text())
    assert raw["schema_version"] == 4
    assert raw["probe"]["device"] == "cpu" and raw["probe"]["bandwidth"] > 0
    for case, saved_case in zip(result.cases, raw["cases"]):
        assert saved_case["bytes_model"] == case.passes * case.spec.bytes_min
        rounds = np.asarray(case.rooflines or result.rooflines[case.spec.bytes_min])
        assert saved_case["roofline_gbs"] * 1e9 == pytest.approx(np.median(rounds))
        assert saved_case["roofline_fraction"] == pytest.approx(result.fraction(case))
        windows = case.samples.summary().windows
        assert windows == len(rounds) == 4
    assert raw["environment"]["cpu"]["logical_cores"] == os.cpu_count()
    assert "torch" in raw["environment"]["packages"]
    assert set(raw["cases"][0]["samples"]) == {"forward", "backward", "update"}
    lines = csv.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("kernel,cuda_graph,ranks,threads,steps_per_call,backend,device")


def test_failures_are_recorded_and_the_sweep_goes_on(fakes, tmp_path):
    names = ["raises", "out-of-memory", "wrong", "diverges", "numpy-manual"]
    result = gdbench.run("cpu", names, [64, 128], budget=0.02, roofline=False,
                         out=tmp_path / "r.json")
    status = {(c.spec.kernel, c.spec.n_samples): (c.status, c.message) for c in result.cases}
    for n in (64, 128):
        assert status[("raises", n)] == ("error", "RuntimeError: backward exploded")
        assert status[("out-of-memory", n)] == ("oom", "MemoryError: cannot allocate 1 TiB")
        assert status[("wrong", n)][0] == "wrong" and "gradient" in status[("wrong", n)][1]
        assert status[("diverges", n)][0] == "diverged"
        assert status[("numpy-manual", n)] == ("ok", "")
    saved = read_json(tmp_path / "r.json")
    assert [c.status for c in saved.cases] == [c.status for c in result.cases]


def test_data_that_does_not_fit_is_recorded(monkeypatch, tmp_path):
    real = sweep.make_problem

    def make_problem(n, *args):
        if n > 1000:
            raise MemoryError("cannot allocate the data")
        return real(n, *args)

    monkeypatch.setattr(sweep, "make_problem", make_problem)
    result = gdbench.run("cpu", ["numpy-manual"], [100, 10**9, 1000], budget=0.02, roofline=False)
    assert [(c.spec.n_samples, c.status) for c in result.cases] == [
        (100, "ok"), (1000, "ok"), (10**9, "oom")]  # in ascending order
    assert "generating the data" in result.cases[2].message


def test_interrupted_run_leaves_valid_results(fakes, tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        gdbench.run("cpu", ["numpy-manual", "interrupts"], [100], budget=0.02, roofline=False,
                    out=out)
    saved = read_json(partial_path(out))
    assert not saved.complete and not out.exists()
    assert [c.spec.kernel for c in saved.cases] == ["numpy-manual"] and saved.cases[0].ok


def cli_with_fakes(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = ("import signal, sys; from gdbench import cli; from gdbench.kernels import registry;"
            "from tests.fake_kernels import FAKES; registry.BUILTIN.update(FAKES);"
            # Ctrl-C as on a terminal, even under a shell that started the tests in the background
            "signal.signal(signal.SIGINT, signal.default_int_handler);"
            "sys.exit(cli.main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.parametrize("kernel,status,word", [("interrupts", 130, "interrupted"),
                                                ("terminates", 143, "terminated")])
def test_cli_ctrl_c_and_sigterm_keep_the_windows_and_the_earlier_file(tmp_path, kernel, status,
                                                                       word):
    out = tmp_path / "r.json"
    out.write_text("earlier results\n")
    result = cli_with_fakes("run", "--device", "cpu", "--kernels", f"numpy-manual,{kernel}",
                            "--sizes", "100", "--no-roofline", "--out", out)
    assert result.returncode == status, result.stderr
    assert result.stderr.strip() == (f"gdbench run: {word}: the windows measured so far are in "
                                     f"{partial_path(out)}; {out} is as it was")
    assert out.read_text() == "earlier results\n"
    assert [c.spec.kernel for c in read_json(partial_path(out)).cases] == ["numpy-manual"]


def test_a_finished_run_moves_the_earlier_file_aside(tmp_path):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    out.write_text("first\n")
    (tmp_path / "r.1.json").write_text("an even earlier one\n")
    csv.write_text("first csv\n")
    gdbench.run("cpu", ["numpy-manual"], [100], budget=0.02, roofline=False, out=out, csv=csv)
    assert read_json(out).complete
    assert (tmp_path / "r.2.json").read_text() == "first\n"
    assert (tmp_path / "r.1.json").read_text() == "an even earlier one\n"
    assert (tmp_path / "r.1.csv").read_text() == "first csv\n"
    assert csv.read_text().startswith("kernel,")
    assert not partial_path(out).exists() and not partial_path(csv).exists()


def test_an_interrupted_runs_partial_file_is_kept_by_the_next_run(fakes, tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        gdbench.run("cpu", ["numpy-manual", "interrupts"], [100], budget=0.02, roofline=False,
                    out=out)
    gdbench.run("cpu", ["numpy-manual"], [100], budget=0.02, roofline=False, out=out)
    kept = tmp_path / "r.partial.1.json"
    assert not read_json(kept).complete and read_json(out).complete


@pytest.mark.parametrize("args,message", [
    (["--out", "same.json", "--csv", "same.json"],
     "--out (same.json) and --csv (same.json) are the same file"),
    (["--csv", "/proc/nope/r.csv"], "cannot write /proc/nope/r.csv"),
    (["--plot", "/proc/nope"], "cannot write /proc/nope"),
])
def test_output_paths_are_checked_before_measuring(tmp_path, args, message, gdbench_cli):
    out = [] if "--out" in args else ["--out", tmp_path / "r.json"]
    start = time.perf_counter()
    result = gdbench_cli("run", "--kernels", "numpy-manual", *args, *out, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.json")) and time.perf_counter() - start < 20


def test_a_size_too_large_to_make_is_recorded_and_the_sweep_goes_on(fakes):
    result = gdbench.run("cpu", ["numpy-manual", "torch-allocator-fails"], [100, 10**30],
                         budget=0.02, windows=2, probe_bytes=1 << 20)
    status = {(c.spec.kernel, c.spec.n_samples): c.status for c in result.cases}
    assert status == {("numpy-manual", 100): "ok", ("torch-allocator-fails", 100): "oom",
                      ("numpy-manual", 10**30): "error", ("torch-allocator-fails", 10**30): "error"}
    assert "generating the data" in result.cases[-1].message
    assert result.complete and 10**30 * 8 not in result.rooflines


@pytest.mark.parametrize("exc,oom", [
    (MemoryError("x"), True),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"),
     True),
    (type("OutOfMemoryError", (Exception,), {})("cupy"), True),
    (RuntimeError("backward exploded"), False),
])
def test_allocation_failures_are_oom(exc, oom):
    from gdbench.measure.prepare import is_oom

    assert is_oom(exc) == oom


def test_several_dtypes_step_on_one_problem_and_count_their_own_bytes():
    result = sweep.run("cpu", ["numpy-manual", "torch-manual"], [1000],
                       dtype="float32,bfloat16,float16", budget=0.02, windows=1,
                       probe_bytes=1 << 20)
    names = [c.spec.name for c in result.cases]
    assert names == ["numpy-manual", "numpy-manual fp16", "torch-manual", "torch-manual bf16",
                     "torch-manual fp16"]
    assert all(c.ok for c in result.cases), [c.message for c in result.cases]
    assert result.settings["dtype"] == "float32,bfloat16,float16"
    assert result.settings["skipped"] == [
        "numpy-manual does not run in bfloat16: it supports float32, float64, float16"]
    by_dtype = {c.spec.dtype: c.spec.bytes_min for c in result.cases}
    assert by_dtype == {"float32": 8000, "bfloat16": 4000, "float16": 4000}
    assert set(result.rooflines) == {8000, 4000}  # each working set has its own roofline
    fp16 = next(c for c in result.cases if c.spec.name == "torch-manual fp16")
    assert fp16.passes == 6.0  # its float32 sums write and read the products once more


def test_a_kernel_in_none_of_the_dtypes_is_an_error():
    with pytest.raises(ValueError, match="numba-fused does not support dtype 'bfloat16'"):
        sweep.plan("cpu", ["numba-fused"], [100], 1, ["bfloat16", "float16"])


def test_threads_set_every_pool_for_each_case_and_restore_them():
    import torch

    from gdbench.measure.threads import limit_threads, thread_counts, usable_cpus

    before = thread_counts()
    counts = [1, 2] if usable_cpus() >= 2 else [1]
    result = sweep.run("cpu", ["numpy-manual", "torch-manual", "numba-fused"], [10_000],
                       threads=counts, budget=0.02, windows=2, roofline=False)
    assert [c.spec.name for c in result.cases] == [
        f"{k} T={t}" for k in ("numpy-manual", "torch-manual", "numba-fused") for t in counts]
    assert result.settings["threads"] == counts
    for case in result.cases:
        assert case.ok, case.message
        # torch, Numba (once a case has loaded it) and every BLAS and OpenMP pool had the
        # case's thread count
        assert "torch" in case.thread_counts
        assert "numba" in case.thread_counts or case.spec.kernel != "numba-fused"
        assert set(case.thread_counts.values()) == {case.spec.threads}, case.thread_counts
    after = thread_counts()  # the pools loaded before are as they were (Numba's may be new)
    with limit_threads(1):
        assert torch.get_num_threads() == 1
    assert thread_counts() == after and {pool: after[pool] for pool in before} == before


def test_a_kernel_out_of_memory_beside_the_others_is_measured_alone_after_them(fakes,
                                                                               monkeypatch):
    """Out of memory at its prepare while another case is live: measured after the others'
    rounds, alone, with as many windows as they had, and its message says so."""
    from gdbench.measure.cases import Rounds
    from tests.fake_kernels import FitsAlone

    measured, rounds = [], Rounds._rounds

    def rounds_then_release(self, live, steps, **kw):
        measured.append([c.spec.kernel for c in live])
        rounds(self, live, steps, **kw)
        FitsAlone.crowded = False  # the others' buffers are gone once their rounds are done

    monkeypatch.setattr(FitsAlone, "crowded", True)
    monkeypatch.setattr(Rounds, "_rounds", rounds_then_release)
    result = sweep.run("cpu", ["numpy-manual", "fits-alone"], [1000], budget=0.02, windows=2,
                       max_windows=2, roofline=False)
    first, alone = result.cases
    assert measured == [["numpy-manual"], ["fits-alone"]]
    assert first.ok and first.windows == 2
    assert alone.ok and alone.windows == 2, alone.message
    assert alone.message.startswith("measured alone: its data did not fit beside")


def test_a_kernel_named_twice_is_measured_once():
    result = gdbench.run("cpu", ["numpy-manual", "numpy-manual"], [100], budget=0.02,
                         roofline=False)
    assert len(result.cases) == 1


class Asynchronous(gdbench.kernels.base.FusedKernelBase):
    """A step that returns at once and finishes 2 ms later, as JAX's CPU dispatch does."""

    name, backend, passes = "asynchronous", "numpy", 1.0

    def _setup(self, x, y, w0):
        self.work = None

    def step(self):
        import threading

        self.work = threading.Thread(target=time.sleep, args=(2e-3,))
        self.work.start()
        self._stepped = True

    def synchronize(self):
        if self.work is not None:
            self.work.join()

    weight = loss = grad = 0.0


def test_a_step_is_timed_until_its_kernel_says_it_is_done():
    from gdbench.measure.cases import sample_window
    from gdbench.measure.timing import StopRule

    kernel = Asynchronous()
    kernel.prepare([1.0, 2.0], [2.0, 4.0])
    kernel.step()  # the first step, as the harness runs it before timing
    samples, k, ran = sample_window(kernel, StopRule(budget=0.05), 0.05, batches=True)
    assert samples.summary().median >= 2e-3  # the latency waits for the work
    assert samples.throughput().median >= 2e-3 / k  # a batch waits for its last step's
    assert ran >= len(samples.device) + len(samples.batch) * k  # every step, untimed ones too


def test_median_agrees_with_timeit():
    """The harness's step time against an independent timer of the same step."""
    x, y = gdbench.make_problem(200_000)
    kernel = gdbench.make_kernel("numpy-manual")
    kernel.prepare(x, y)
    kernel.step()

    def independent():  # (fastest, median) of 15 repeats of 10 steps, per step
        times = np.array(timeit.repeat(kernel.step, number=10, repeat=15)) / 10
        return float(times.min()), float(np.median(times))

    # timed before and after the harness. Other work (another test process) slows timeit's
    # repeats, while the harness measures a contended window again: the harness's median is
    # held against timeit's fastest repeat from below and its median from above.
    before = independent()
    result = gdbench.run("cpu", ["numpy-manual"], [200_000], budget=0.5, roofline=False)
    after = independent()
    harness = result.cases[0].summary()
    assert 0.5 * min(before[0], after[0]) < harness.median < 2.0 * max(before[1], after[1])
    # The phases are timed back to back: their medians add up to about the step's median.
    phase_sum = sum(result.cases[0].summary(p).median for p in gdbench.PHASES)
    assert 0.8 < phase_sum / harness.median < 1.25


@pytest.mark.parametrize("args,message", [
    (["--kernels", "nope"], "unknown kernel 'nope'"),
    (["--device", "cuda", "--kernels", "numpy-manual"], "does not run on 'cuda'"),
    (["--sizes", "1e2,abc"], "size 'abc' is not a number"),
    (["--sizes", "0"], "size '0' is not a positive whole number"),
    (["--sizes", "-5"], "is not a positive whole number"),
    (["--dtype", "float32,int8"], "unknown dtype 'int8'; choose from: float32, float64"),
    (["--kernels", "numba-fused", "--dtype", "bfloat16"], "numba-fused does not support dtype"),
    (["--threads", "0"], "thread count 0 is not between 1 and the"),
    (["--threads", "1,x"], "thread count 'x' is not a whole number"),
    (["--threads", "100000"], "thread count 100000 is not between 1"),
    (["--device", "cuda", "--threads", "1"], "they need --device cpu"),
    (["--nproc", "2", "--dtype", "float32,bfloat16"], "takes one --dtype"),
    (["--nproc", "2", "--threads", "1"], "--threads does not go with a data-parallel run"),
    (["--features", "0"], "features must be at least 1"),
    (["--budget", "0"], "budget must be a positive number"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "cpu", "--cuda-graph"], "CUDA graphs need --device cuda"),
    (["--kernels", "numpy-manual", "--out", "/proc/gdbench.json"], "/proc"),
    (["--kernels", "numpy-manual", "--precision", "2"], "precision must be between 0 and 1"),
    (["--sizes", ""], "no sizes given"),
    (["--kernels", "numpy-manual", "--windows", "0"], "windows must be a whole number"),
    (["--kernels", "numpy-manual", "--processes", "0"], "processes must be a whole number"),
])
def test_cli_run_bad_arguments(args, message, tmp_path, gdbench_cli):
    out = [] if "--out" in args else ["--out", str(tmp_path / "r.json")]
    result = gdbench_cli("run", *args, *out, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_run_table_and_files(tmp_path, gdbench_cli):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    result = gdbench_cli("run", "--device", "cpu", "--kernels", "numpy-manual,torch-autograd",
                         "--sizes", "1e2,1e3", "--budget", "0.05", "--no-roofline", "--out", out,
                         "--csv", csv)
    assert result.returncode == 0, result.stderr
    assert "N = 1e2" in result.stdout and "torch-autograd" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "numpy-manual" in line]
    # one line per cell: a median with its ±, or "contended" where another process held it back
    assert len(rows) == 1 and rows[0].count("±") + rows[0].count("contended") == 2
    assert "GB/s" not in rows[0]
    # Not a terminal: no progress bar in stderr, just where the results went.
    assert result.stderr.strip() == f"wrote {out} and {csv}"
    assert read_json(out).complete and csv.exists()


def test_cli_run_detail_shows_every_figure(tmp_path, gdbench_cli):
    result = gdbench_cli("run", "--device", "cpu", "--kernels", "numpy-manual", "--sizes", "1e2",
                         "--budget", "0.02", "--no-roofline", "--detail", "--out",
                         tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert "GB/s" in result.stdout and "tput" in result.stdout


def test_cli_list(gdbench_cli):
    result = gdbench_cli("list")
    assert result.returncode == 0
    assert "numpy-manual" in result.stdout and "cupy-manual" in result.stdout


def bandwidth_floor(case, probe) -> float:
    """The least time a step can take: its modelled bytes at the measured bandwidth."""
    return case.bytes_model / gdbench.records.roofline.Probe.from_dict(probe).bandwidth


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["torch-manual", "cupy-manual"])
def test_cuda_step_time_includes_device_work(name):
    """Event-timed steps against the byte model, and against wall time with one synchronization.

    A launch-bound kernel takes about as long at 10^6 as at 10^4 samples, so the sizes are not
    compared with each other; a step at 10^8 must take at least half the time its bytes need
    at the bandwidth the probe measured, which a clock that saw only launches would not show.
    """
    n = 10**8
    if not registry.list_kernels("cuda")[registry.kernel_names().index(name)].available_on("cuda"):
        pytest.skip(f"{name} is unavailable on cuda here")
    result = gdbench.run("cuda", [name], [n], budget=0.5)
    [case] = result.cases
    assert case.ok and case.samples.host is not None
    large = case.summary().median
    assert large >= 0.5 * bandwidth_floor(case, result.probe)
    assert case.throughput.median >= 0.5 * bandwidth_floor(case, result.probe)
    kernel = gdbench.make_kernel(name, "cuda")
    kernel.prepare(*gdbench.make_problem(n))
    kernel.step()
    kernel.synchronize()

    def steps():
        for _ in range(10):
            kernel.step()
        kernel.synchronize()
    wall = min(timeit.repeat(steps, number=1, repeat=3)) / 10
    assert 0.7 < large / wall < 1.4


@pytest.mark.cuda
def test_cuda_batches_graphs_telemetry_and_l2():
    """Every CUDA kernel at 10^4, with and without graphs: latency, batches, NVML, L2 roofline."""
    from tests.conftest import kernels_on

    names = kernels_on("cuda")
    result = gdbench.run("cuda", names, [10**4], budget=0.1, cuda_graph=True)
    graphed = {k.name for k in gdbench.list_kernels("cuda") if k.cuda_graph and k.name in names}
    assert {c.spec.name for c in result.cases} == set(names) | {f"{n}+graph" for n in graphed}
    for case in result.cases:
        assert case.ok, (case.spec.label, case.message)
        assert case.samples.batch_size >= 1 and len(case.samples.batch) >= 5
        # a batch lasts about a millisecond, and overlapping launches make it no slower
        assert case.samples.batch_size * case.throughput.median >= 0.4e-3
        assert case.throughput.median <= 1.2 * case.summary().median
        assert case.fits_in_cache and case.settle_steps > 0
    l2 = result.environment["gpu"]["l2_cache_bytes"]
    assert result.probe["levels"] == {"L2": l2} and l2 > 0
    assert min(int(k) for k in result.probe["curve"]) == 64 << 10 and len(result.probe["curve"]) >= 5
    assert len(result.rooflines[80_000]) == 4 and min(result.rooflines[80_000]) > 0
    if importlib.util.find_spec("pynvml"):
        for case in result.cases:
            window = case.telemetry["windows"][0]
            assert window["start"]["sm_clock_mhz"] > 0
            assert window["end"]["max_sm_clock_mhz"] > 0
        assert result.environment["gpu"]["nvml"]["driver"]


@pytest.mark.parametrize("fresh,instances", [(True, 3), (False, 1)])
def test_every_window_is_of_a_fresh_instance_on_fresh_buffers(fakes, fresh, instances):
    from tests.fake_kernels import Counted

    Counted.buffers = []
    run = gdbench.run("cpu", ["counted"], [1000], budget=0.03, windows=3, max_windows=3,
                      roofline=False, memory=False, remeasure=False, fresh=fresh)
    assert run.cases[0].ok and run.cases[0].windows == 3
    assert len(Counted.buffers) == instances  # prepared once per window, or once
    assert len(set(Counted.buffers[1:])) == instances - 1  # each on a copy of its own
    assert run.settings["fresh_layout"] is fresh


def test_worker_processes_get_the_settings_whole(tmp_path, monkeypatch):
    """gdbench.run(processes=2, lr=..., seed=...): each worker measures with that learning
    rate and seed (they travel as JSON, not as options that dropped them), and says so in the
    results file it writes."""
    import subprocess as sp

    from gdbench.runs import workers

    seen = []
    real = sp.run

    def spy(command, *args, **kwargs):
        done = real(command, *args, **kwargs)
        if "--settings-file" in command:  # a worker
            out = Path(command[command.index("--out") + 1])
            seen.append(json.loads(out.read_text())["settings"])
        return done

    monkeypatch.setattr(workers.subprocess, "run", spy)
    gdbench.run(device="cpu", kernels=["numpy-manual"], sizes=[1000], processes=2, windows=2,
                lr=0.1, seed=7, budget=0.02, roofline=False, memory=False,
                out=tmp_path / "r.json")
    assert len(seen) == 2
    assert all(s["lr"] == 0.1 and s["seed"] == 7 and s["windows"] == 1 for s in seen), seen


@pytest.mark.parametrize("cls,bad,error", [
    (Settings, {"budget": -1.0}, "budget must be a positive number"),
    (Settings, {"sizes": (0,)}, "sizes must be positive whole numbers"),
    (ConvergeSettings, {"tol": 2.0}, "tol must be between 0 and 1"),
    (AbSettings, {"min_blocks": 2}, "blocks: need 3 <= min blocks"),
    (AbSettings, {"sizes": (0,)}, "sizes must be positive whole numbers"),
])
def test_every_command_s_settings_are_checked_by_one_checked_and_travel_whole(cls, bad, error):
    """run's, converge's and ab's settings share one base: built by keyword, validated by
    ``checked`` alone (one line of ValueError), carried whole as JSON."""
    good = cls(device="cpu")
    assert isinstance(good, Checked) and cls.from_json(good.to_json()) == good
    assert good.checked().device == "cpu"
    given = cls(**{**good.__dict__, **bad})  # any fields can be built; checked judges them
    with pytest.raises(ValueError, match=error) as raised:
        given.checked()
    assert "\n" not in str(raised.value)
