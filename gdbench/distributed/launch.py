"""``gdbench run --nproc P``: local workers through torch.distributed's elastic agent.

The agent behind ``torchrun`` starts P processes of ``python -m gdbench run`` with the
launcher's environment set, so that they run ``gdbench.distributed.worker`` exactly as under
``torchrun``; the rendezvous is c10d on 127.0.0.1 at a free port (or ``port``), nothing is
restarted, and joining is bounded by the timeout. With several world sizes (``--nproc 1,2``)
each is one launch, and the parent joins their cases into one result: strong scaling at the
sizes asked for, and weak scaling at P times each of them for P ranks when asked for (or when
one rank is among the world sizes). Scaling is judged against the plain step, the same kernel
in one process without an all-reduce, which the parent measures first at every size. Each rank
gets 1/P of this machine's cores (OMP_NUM_THREADS), so that every world size uses all of them.

A rank that dies or fails ends its launch with one line naming the first rank to fail and the
last error in its output (the ranks' output goes to log files, not the terminal). A rank that
hangs is named as the one the others timed out waiting for, and the agent kills it a few seconds
after the collectives' timeout. Ctrl-C and SIGTERM stop every rank and reach the caller as a
KeyboardInterrupt whose ``status`` is 130 or 143. In every case the cases of the world sizes
finished before, and the windows rank 0 saved of the one that stopped, are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

from gdbench.core.devices import is_cpu, is_cuda
from gdbench.files.paths import partial_path
from gdbench.files.results import Output, read_json
from gdbench.measure.environment import capture
from gdbench.records.run import RunResult
from gdbench.runs import sweep
from gdbench.runs.settings import Settings


class RankFailure(RuntimeError):
    """A rank of a launch died, failed or hung: what the first one to fail said."""


@contextlib.contextmanager
def _quiet_agent():
    """The agent logs every worker it starts and stops; the run says what matters itself."""
    # torch sets the level of each of its loggers, so every one of them is quietened
    names = [name for name in logging.root.manager.loggerDict
             if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher"))]
    loggers = [logging.getLogger(name) for name in names + ["torch.distributed.elastic",
                                                            "torch.distributed.launcher"]]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _signal_handlers_kept():
    """The agent installs its own handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT and leaves
    them; the caller's are put back afterwards."""
    numbers = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
               if hasattr(signal, name)]
    kept = {number: signal.getsignal(number) for number in numbers}
    try:
        yield
    finally:
        for number, handler in kept.items():
            if handler is not None:
                signal.signal(number, handler)


def parse_world_sizes(text: str) -> list[int]:
    """``2`` or ``1,2,4``: positive whole numbers; ValueError otherwise."""
    try:
        sizes = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--nproc {text!r} is not a list of whole numbers such as 1,2") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--nproc must be at least 1, got {text!r}")
    return sorted(set(sizes))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(port: int) -> None:
    """ValueError when ``port`` on 127.0.0.1 is taken."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ValueError(f"port {port} on 127.0.0.1 is in use; choose another with "
                             "--dist-port, or leave it out for a free one") from None


def worker_command(settings: Settings, sizes: list[int], out: Path) -> list[str]:
    """``-m gdbench run ...`` for the ranks of one launch: the settings go whole, as JSON in a
    file beside ``out``, so that none is lost on the way."""
    given = out.with_suffix(".settings.json")
    given.write_text(replace(settings.for_worker(), sizes=tuple(sizes)).to_json())
    return ["-m", "gdbench", "run", "--settings-file", str(given), "--quiet", "--out", str(out)]


def last_error(log: Path) -> str:
    """The last line of a rank's stderr that reads as an error, or ""."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return errors[-1] if errors else ""


TIMED_OUT = ("timed out", "timeout", "timedout")


def failure_line(exc: BaseException, world: int, logs: Path, timeout_s: float = 0) -> str:
    """One line for a launch that failed: the rank that hung, when the others timed out
    waiting for it; else the first rank to fail, how, and its last error."""
    get_first = getattr(exc, "get_first_failure", None)
    if get_first is None:  # the rendezvous or the agent itself
        return f"{world} ranks: {type(exc).__name__}: {exc}".splitlines()[0]
    rank, failure = get_first()
    how = (f"killed by signal {-failure.exitcode}" if failure.exitcode < 0 else
           f"exit code {failure.exitcode}")

    def error_of(r):
        return next((last_error(log) for log in sorted(logs.glob(f"*/attempt_*/{r}/stderr.log"))),
                    "")

    detail = error_of(rank)
    # A rank that hung does not time out itself: it fails only when the agent stops it, after
    # the others timed out waiting for it (or not at all, where the agent reports the first
    # failures alone).
    failures = getattr(exc, "failures", None) or {rank: failure}
    silent = sorted(r for r in range(world) if r not in failures or (
        r != rank and not any(word in error_of(r).lower() for word in TIMED_OUT)))
    if silent and any(word in detail.lower() for word in TIMED_OUT):
        names = ", ".join(map(str, silent))
        return (f"rank{'s' if len(silent) > 1 else ''} {names} of {world} stopped answering: "
                f"rank {rank} timed out waiting for {'them' if len(silent) > 1 else 'it'}"
                + (f" after {timeout_s:g} s" if timeout_s else "") + f" ({detail})")
    return f"rank {rank} of {world} failed ({how})" + (f": {detail}" if detail else "")


def _stopped(exc) -> KeyboardInterrupt:
    """The agent's SignalException as the KeyboardInterrupt a plain run raises: exit status
    128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    number = int(getattr(exc, "sigval", signal.SIGINT))
    stop = KeyboardInterrupt("terminated" if number == signal.SIGTERM else "interrupted")
    stop.status = 128 + number
    return stop


# Seconds the agent waits for a rank to stop after SIGTERM before it kills it: a rank that is
# stopped (SIGSTOP) or stuck outside Python never acts on SIGTERM.
SHUTDOWN_S = 3


def _shutdown_timeout(config_class) -> dict:
    """``shutdown_timeout`` where this torch's LaunchConfig has it (2.8 and later)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    return {"shutdown_timeout": SHUTDOWN_S} if "shutdown_timeout" in fields else {}


@contextlib.contextmanager
def _failed_ranks_stopped_within(seconds: int):
    """Once a rank fails, the agent's process context stops the others through its own
    ``close()``, whose 30 s default ignores ``shutdown_timeout`` (torch 2.8 to 2.13): a stopped
    rank, which never acts on SIGTERM, held every such launch 30 s. Within this block every
    close waits at most ``seconds`` before it kills."""
    from torch.distributed.elastic.multiprocessing.api import PContext

    original = PContext.close

    def close(self, death_sig=None, timeout=30):
        return original(self, death_sig, min(timeout, seconds))

    PContext.close = close
    try:
        yield
    finally:
        PContext.close = original


def plain_baseline(settings: Settings) -> list:
    """The plain step of every kernel at every size, in this one process: what scaling is
    judged against."""
    return sweep.sweep(replace(settings, roofline=False, memory=False)).cases


def launch_sizes(sizes, world: int, weak: bool) -> list[int]:
    """The sizes a launch of ``world`` ranks measures: those asked for (strong scaling), and
    ``world`` times each of them (weak scaling) when ``weak``."""
    return sorted(set(sizes) | ({n * world for n in sizes} if weak and world > 1 else set()))


def launch(settings: Settings, world_sizes: list[int], output: Output,
           port: int | None = None, on_launch=None) -> RunResult:
    """Run the sweep of ``settings`` (checked, data-parallel kernels, one dtype) once per world
    size; the joined result, written through ``output``."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    s, device = settings, settings.device
    backend = s.dist_backend or ("nccl" if is_cuda(device) else "gloo")
    if is_cpu(device) and backend == "nccl":
        raise ValueError("NCCL all-reduces CUDA tensors: use --device cuda, or --dist-backend "
                         "gloo on the CPU")
    if is_cuda(device) and backend == "nccl":
        import torch

        if max(world_sizes) > torch.cuda.device_count():
            raise ValueError(f"NCCL needs one GPU per rank: --nproc {max(world_sizes)} on "
                             f"{torch.cuda.device_count()} GPU(s)")
    if port is not None:
        check_port(port)
    weak = s.weak_scaling or 1 in world_sizes
    result = RunResult(capture(device), {
        "device": device, "kernels": list(s.kernels), "sizes": list(s.sizes),
        "n_features": s.n_features, "dtype": s.dtype, "budget_s": s.budget,
        "precision": s.precision, "windows": s.windows, "cache_state": "warm",
        "world_sizes": world_sizes, "dist_timeout_s": s.dist_timeout, "dist_backend": backend,
        "weak_scaling": bool(weak), "fresh_layout": s.fresh})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads_before = os.environ.get("OMP_NUM_THREADS")
    try:
        if on_launch:
            on_launch(0)
        result.cases += plain_baseline(s)
        output.save(result)
        with tempfile.TemporaryDirectory(prefix="gdbench-ranks-") as folder:
            for world in world_sizes:
                if on_launch:
                    on_launch(world)
                sizes = launch_sizes(s.sizes, world, weak)
                out = Path(folder) / f"ranks-{world}.json"
                os.environ["OMP_NUM_THREADS"] = str(max(1, cores // world))
                logs = Path(folder) / f"logs-{world}"
                config = LaunchConfig(
                    min_nodes=1, max_nodes=1, nproc_per_node=world,
                    run_id=f"gdbench-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
                    rdzv_endpoint=f"127.0.0.1:{port or free_port()}",
                    rdzv_configs={"join_timeout": s.dist_timeout}, max_restarts=0,
                    monitor_interval=0.2, start_method="spawn",
                    logs_specs=DefaultLogsSpecs(log_dir=str(logs), redirects=Std.ALL),
                    **_shutdown_timeout(LaunchConfig))
                try:
                    with _quiet_agent(), _signal_handlers_kept(), \
                            _failed_ranks_stopped_within(SHUTDOWN_S):
                        elastic_launch(config, sys.executable)(
                            *worker_command(s, sizes, out))
                except BaseException as exc:
                    partial = partial_path(out)
                    if partial.exists():  # the windows rank 0 saved before the failure
                        result.cases += read_json(partial).cases
                        output.save(result)
                    if type(exc).__name__ == "SignalException":
                        raise _stopped(exc) from None
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    raise RankFailure(failure_line(exc, world, logs, s.dist_timeout)) from None
                ranks_run = read_json(out)
                result.cases += ranks_run.cases
                result.allreduce_floors.update(ranks_run.allreduce_floors)
                result.settings.setdefault("ranks_environment", {})[str(world)] = \
                    ranks_run.environment.get("threads", {})
                output.save(result)
        result.complete = True
        output.finish(result)
        result.moved_aside = output.moved
        return result
    finally:
        if threads_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads_before
