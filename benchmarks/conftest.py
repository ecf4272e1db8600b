"""The pytest-benchmark suite's options, cases and verified kernels.

Plain ``pytest`` runs each benchmark once on a tiny size, untimed, so a broken benchmark fails
the tests; ``pytest --benchmark-only`` (or ``--benchmark-enable``) times the suite.
"""

import functools
import os
import shutil

import pytest

if not (os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi")):
    os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels on CPU tensors, as in tests/

import gdbench  # noqa: E402
from gdbench.core.devices import is_cpu, resolve_device  # noqa: E402
from gdbench.core.dtypes import DTYPES, problem_dtype  # noqa: E402
from gdbench.core.reference import compare_step, loss_and_grad, make_problem  # noqa: E402
from gdbench.measure.clocks import SynchronizedClock  # noqa: E402
from gdbench.core.units import format_size  # noqa: E402
from gdbench.records.results import CaseSpec  # noqa: E402
from gdbench.runs.sweep import parse_sizes  # noqa: E402

TIMED_SIZES = {"cpu": "1e3,1e5,1e6", "cuda": "1e4,1e6,1e8"}
UNTIMED_SIZES = "100"
TIMING_OPTIONS = ("benchmark_only", "benchmark_enable", "benchmark_json", "benchmark_autosave",
                  "benchmark_save", "benchmark_compare")


def pytest_addoption(parser):
    group = parser.getgroup("gdbench")
    group.addoption("--gdbench-device", default="auto", help="cpu, cuda or auto (default)")
    group.addoption("--gdbench-sizes", default=None,
                    help="sample counts, such as 1e3,1e6 or 1e2:1e8 (default: "
                         f"{TIMED_SIZES['cpu']} on cpu, {TIMED_SIZES['cuda']} on cuda; "
                         f"{UNTIMED_SIZES} when benchmarks are not timed)")
    group.addoption("--gdbench-kernels", default="all", help="comma-separated kernel names")
    group.addoption("--gdbench-dtype", default="float32", choices=DTYPES,
                    help="storage format of x, y and w (default float32)")
    group.addoption("--gdbench-max-time", type=float, default=0.5, metavar="SECONDS",
                    help="seconds of timed rounds per benchmark (default 0.5)")


def timed(config) -> bool:
    return any(config.getoption(o, default=None) for o in TIMING_OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not timed(config):
        config.option.benchmark_disable = True


@functools.cache
def clock(device: str) -> SynchronizedClock:
    return SynchronizedClock(device)  # one per device: pytest-benchmark measures its precision once


def cases(config, phase: str) -> list[CaseSpec]:
    device = resolve_device(config.getoption("gdbench_device"))
    dtype = config.getoption("gdbench_dtype")
    sizes = config.getoption("gdbench_sizes") or (
        TIMED_SIZES[device] if timed(config) else UNTIMED_SIZES)
    wanted = config.getoption("gdbench_kernels")
    infos = [k for k in gdbench.list_kernels(device) if k.available_on(device)]
    if timed(config) and is_cpu(device):
        # Triton on the CPU is its interpreter: right for checking a kernel, not for timing it.
        infos = [k for k in infos if k.backend != "triton"]
    if wanted != "all":
        names = [n.strip() for n in wanted.split(",")]
        for name in names:
            gdbench.make_kernel(name, device, dtype)  # a clear error for a name that cannot run
        infos = [k for k in infos if k.name in names]
    return [CaseSpec(k.name, device, dtype, n) for n in parse_sizes(sizes) for k in infos
            if phase in ("step", *k.phases) and dtype in k.dtypes]


def case_id(spec: CaseSpec) -> str:
    return f"{spec.kernel}-{spec.device}-{format_size(spec.n_samples)}"


def pytest_generate_tests(metafunc):
    if "spec" in metafunc.fixturenames:
        phase = metafunc.function.__name__.removeprefix("test_")
        specs = cases(metafunc.config, phase)
        marks = [pytest.mark.benchmark(group=f"{phase} N={format_size(s.n_samples)}",
                                       timer=clock(s.device),
                                       max_time=metafunc.config.getoption("gdbench_max_time"))
                 for s in specs]
        metafunc.parametrize("spec", [pytest.param(s, marks=m, id=case_id(s))
                                      for s, m in zip(specs, marks)])


@functools.lru_cache(maxsize=1)
def problem(n_samples: int, dtype: str):
    """The case's data and its float64 reference step, shared by the kernels of one size."""
    x, y = make_problem(n_samples, 1, dtype)
    return x, y, loss_and_grad(x, y, [0.0])


@pytest.fixture
def max_time(request) -> float:
    """Seconds of timed rounds per benchmark (``--gdbench-max-time``)."""
    return request.config.getoption("gdbench_max_time")


@pytest.fixture
def round_clock(spec):
    """The clock pytest-benchmark times this case's rounds with."""
    return clock(spec.device)


@pytest.fixture
def kernel(spec, request):
    """The case's kernel, prepared and checked against the float64 reference.

    The benchmark fixture is taken only once the check has passed, so a wrong kernel is an
    error at set-up and never timed.
    """
    x, y, reference = problem(spec.n_samples, problem_dtype(spec.dtype))
    k = gdbench.make_kernel(spec.kernel, spec.device, spec.dtype)
    k.prepare(x, y)
    k.step()
    k.synchronize()
    wrong = compare_step(k, x, y, reference=reference)
    if wrong:
        pytest.fail(f"{spec.label} disagrees with the float64 reference: {wrong}")
    clock(spec.device).kernel = k
    benchmark = request.getfixturevalue("benchmark")
    benchmark.extra_info.update(kernel=spec.kernel, backend=k.backend, device=spec.device,
                                dtype=spec.dtype, n_samples=spec.n_samples,
                                bytes_per_step=spec.bytes_min)
    yield k
    clock(spec.device).kernel = None
    if benchmark.stats is not None:
        # Throughput of this benchmark's median in the bytes a whole step must read.
        benchmark.extra_info["effective_gbs"] = spec.bytes_min / benchmark.stats.stats.median / 1e9
