"""One rank of a data-parallel run, started by ``torchrun`` or by ``gdbench run --nproc``.

The launcher's environment says who this process is (RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous); the process group is gloo on the CPU and NCCL on CUDA (one GPU per rank), with a
timeout on every collective so that a rank that dies or hangs ends the run in bounded time.

Every rank plans the same cases, makes the same seeded problems and takes its shard. A case is
verified on the full data before it is timed, as in one process. The ranks stay in lockstep:
rank 0 decides how many steps each warm-up, sample run and batch run takes and broadcasts it,
and the all-reduce inside every step holds the ranks together. Windows go round the cases as in
``gdbench.measure.cases``, and each round first measures the all-reduce floor: the latency of an
all-reduce of the gradient's size on this backend and world size. Every rank reads the axes
that say how ranks join (``gdbench.axes.window_hooks(device, ranks=True)``: contention,
telemetry and energy) around its windows. At the end rank 0 gathers every rank's samples and
readings; a sample's time is the slowest rank's, a window's reading is its axis's join of the
ranks' (``across_ranks``), and rank 0 writes the results.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, replace
import time
from datetime import timedelta

import numpy as np

from gdbench.axes import window_hooks
from gdbench.core.devices import is_cuda
from gdbench.core.dtypes import accumulator, problem_dtype
from gdbench.core.reference import loss_and_grad, make_problem
from gdbench.distributed.adapters import data_parallel_kernels
from gdbench.distributed.step import DataParallel
from gdbench.files.results import Output
from gdbench.kernels import registry
from gdbench.measure.cases import round_order, window_samples
from gdbench.measure.prepare import Live, prepare
from gdbench.measure.clocks import make_timer
from gdbench.measure.environment import capture
from gdbench.measure.timing import StopRule, take_window
from gdbench.records.results import CaseResult, CaseSpec
from gdbench.records.run import RunResult
from gdbench.records.samples import Samples
from gdbench.runs.settings import Settings

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
FLOOR_REPEATS = 50
PILOT_STEPS = 5
MIN_SAMPLES = 8  # per window: a window's count is fixed in advance, so it has to be robust


def launched() -> bool:
    """Whether this process is a worker of torchrun or of the elastic agent."""
    return all(v in os.environ for v in LAUNCHER_VARIABLES)


class Ranks:
    """This process's place in the group, and the collectives the measurement needs."""

    def __init__(self, device: str, backend: str | None, timeout_s: float):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.backend = backend or ("nccl" if is_cuda(device) else "gloo")
        if is_cuda(device):
            if self.local_rank >= torch.cuda.device_count():
                raise ValueError(f"rank {self.rank} needs GPU {self.local_rank}, but this "
                                 f"machine has {torch.cuda.device_count()}")
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(self.backend, timeout=timedelta(seconds=timeout_s))

    def decide(self, value):
        """Rank 0's ``value``, on every rank."""
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def everyone(self, value) -> list:
        """Every rank's ``value``, on every rank, in rank order."""
        values = [None] * self.world
        self.dist.all_gather_object(values, value)
        return values

    def close(self, finished: bool = False) -> None:
        """Leave the group; after a finished run, only once every rank is done with it."""
        if self.dist.is_initialized():
            if finished:
                self.dist.barrier()
            self.dist.destroy_process_group()


def allreduce_floor(ranks: Ranks, size: int, dtype: str, device: str) -> float:
    """Median seconds of one all-reduce of ``size`` elements, the slowest rank's."""
    torch = ranks.torch
    buffer = torch.zeros(size, dtype=getattr(torch, dtype), device=device)
    sync = torch.cuda.synchronize if is_cuda(device) else (lambda: None)
    ranks.dist.all_reduce(buffer)
    sync()
    times = []
    for _ in range(FLOOR_REPEATS):
        ranks.dist.barrier()
        start = time.perf_counter()
        ranks.dist.all_reduce(buffer)
        sync()
        times.append(time.perf_counter() - start)
    return max(ranks.everyone(float(np.median(times))))


class RankCase:
    """One case on this rank: its data-parallel kernel and the windows measured so far."""

    def __init__(self, spec: CaseSpec, kernel: DataParallel, fields: dict):
        self.spec, self.kernel, self.fields = spec, kernel, fields
        self.parts = []
        self.hooks = ()  # gdbench.axes.window_hooks(device, ranks=True)
        self.readings = {}  # a hook's field -> this rank's reading of each window
        self.batch_size = None

    def window(self, ranks: Ranks, rule: StopRule, budget: float) -> None:
        """Warm-up, latency samples and batches, as many as rank 0 says, in lockstep: the
        sampling loop (``gdbench.measure.timing``) with its count rule."""
        kernel, dist = self.kernel, ranks.dist
        timer = make_timer(kernel)
        dist.barrier()
        pilot = []
        for _ in range(PILOT_STEPS):  # the median, so that one stalled step sets no count
            start = time.perf_counter()
            kernel.step()
            kernel.synchronize()
            pilot.append(time.perf_counter() - start)
        estimate = ranks.decide(float(np.median(pilot)))
        warm = ranks.decide(max(1, int(min(rule.warmup, 0.05) / estimate)) if not self.parts
                            else max(1, int(1e-3 / estimate)))
        for _ in range(warm):
            kernel.step()
        kernel.synchronize()
        count = ranks.decide(int(np.clip(budget / estimate, MIN_SAMPLES, rule.max_samples)))
        size = self.batch_size or ranks.decide(
            int(np.clip(rule.batch_seconds / estimate,
                        rule.min_batch_steps if timer.asynchronous else 1, rule.max_batch_size)))
        batches = ranks.decide(int(np.clip(budget / 2 / (size * estimate), rule.min_samples,
                                           1000)))
        started = [hook.start() for hook in self.hooks]
        window = take_window(kernel, timer, replace(rule, count=count, batches=batches), budget,
                             batches=True, batch_size=size)
        for hook, token in reversed(list(zip(self.hooks, started))):
            self.readings.setdefault(hook.field, []).append(hook.stop(token, window.steps))
        self.batch_size = size
        self.parts.append(window_samples(window))


def slowest(per_rank: list[Samples]) -> Samples:
    """Each sample from the rank whose step took longest, each batch likewise."""
    steps = np.stack([s.step() for s in per_rank])  # (ranks, samples)
    pick = steps.argmax(axis=0)
    rows = np.arange(steps.shape[1])
    device = np.stack([s.device for s in per_rank])[pick, rows]
    host = None
    if per_rank[0].host is not None:
        host = np.stack([s.host for s in per_rank])[pick, rows]
    batch = np.max(np.stack([s.batch for s in per_rank]), axis=0)
    batch_host = None
    if per_rank[0].batch_host is not None:
        batch_host = np.max(np.stack([s.batch_host for s in per_rank]), axis=0)
    first = per_rank[0]
    return Samples(first.phases, device, host, batch, first.batch_size, batch_host, first.window,
                   first.batch_window)


def measure(settings: Settings, out=None, csv=None, extra: dict | None = None,
            on_start=None) -> RunResult | None:
    """Measure this rank's part of the data-parallel sweep of ``settings`` (checked, one
    dtype); rank 0 returns (and writes) the run."""
    s = settings
    device, dtype, n_features, lr, seed = s.device, s.dtypes[0], s.n_features, s.lr, s.seed
    names = data_parallel_kernels(device, dtype, s.kernels)
    if not names:
        raise ValueError(f"no kernel runs data-parallel on {device} in {dtype} here")
    ranks = Ranks(device, s.dist_backend, s.dist_timeout)
    try:
        rule = StopRule.for_budget(s.precision, s.budget, s.windows)
        output = Output(out, csv) if ranks.rank == 0 else None
        specs = [CaseSpec(kernel=k, device=device, dtype=dtype, n_samples=int(n),
                          n_features=n_features, ranks=ranks.world)
                 for n in s.sizes for k in names]
        hosts = ranks.everyone(socket.gethostname())
        all_settings = {"device": device, "dtype": dtype, "n_features": n_features,
                        "sizes": list(s.sizes), "kernels": names, "budget_s": s.budget,
                        "precision": s.precision, "lr": lr, "seed": seed,
                        "windows": s.windows, "cache_state": "warm",
                        "dist_backend": ranks.backend, "world_size": ranks.world,
                        "dist_timeout_s": s.dist_timeout,
                        "hosts": hosts, **(extra or {})}
        result = RunResult(capture(device), all_settings)
        cases = _prepare(ranks, specs, n_features, dtype, seed, lr, rule, result)
        live = [c for c in cases if isinstance(c, RankCase)]
        hooks = window_hooks(device, ranks=True)  # after the kernels made the CUDA context
        for case in live:
            case.hooks = hooks
        for index in range(s.windows):
            floor = allreduce_floor(ranks, n_features + 1, accumulator(dtype), device)
            result.allreduce_floors.setdefault(ranks.world, []).append(floor)
            for _, group in round_order(live, index):
                for case in group:
                    if on_start and ranks.rank == 0:
                        on_start(case.spec, index * len(live), s.windows * len(live))
                    case.window(ranks, rule, s.budget / s.windows)
            if output is not None:
                result.cases = _results(ranks, cases, hosts, gather=False)
                output.save(result)
        result.cases = _results(ranks, cases, hosts, gather=True)
        result.complete = True
        if output is not None:
            output.finish(result)
            result.moved_aside = output.moved
        ranks.close(finished=True)
        return result if output is not None else None
    finally:
        ranks.close()


def _prepare(ranks: Ranks, specs, n_features, dtype, seed, lr, rule, result) -> list:
    """A RankCase or a CaseResult per spec; every rank agrees on which cases will be timed."""
    problems, out = {}, []
    fields = {"precision_target": rule.precision}
    for spec in specs:
        n = spec.n_samples
        if n not in problems:
            try:
                x, y = make_problem(n, n_features, problem_dtype(dtype), seed)
                problems = {n: (x, y, loss_and_grad(x, y, np.zeros(n_features)))}
            except Exception as exc:  # too large: every rank fails alike
                problems = {n: f"{type(exc).__name__}: generating the data: {exc}"}
        problem = problems[n]
        if isinstance(problem, str):
            case = CaseResult(spec, "error", problem.splitlines()[0], **fields)
        else:
            case = prepare(spec, *problem, lr, fields,
                           make=lambda s: DataParallel(registry.make_kernel(s.kernel, s.device,
                                                                            dtype),
                                                       ranks.rank, ranks.world))
        status = None if isinstance(case, Live) else (case.status, case.message)
        statuses = ranks.everyone(status)  # the first rank that failed speaks for the case
        failed = next(((r, s) for r, s in enumerate(statuses) if s), None)
        if failed:
            rank, (kind, message) = failed
            mine = case.fields if isinstance(case, Live) else {
                k: v for k, v in asdict(case).items()
                if k not in ("spec", "status", "message", "samples", "readings")}
            out.append(CaseResult(spec, kind, f"rank {rank}: {message}", **mine))
        else:
            out.append(RankCase(spec, case.kernel, case.fields))
    return out


def _results(ranks: Ranks, cases: list, hosts: list,
             gather: bool) -> list[CaseResult] | None:
    """The cases' results on rank 0: every rank's samples and readings gathered when
    ``gather`` (all ranks must call it then), else rank 0's own so far."""
    mine = [(Samples.concat(c.parts), c.readings) if isinstance(c, RankCase) and c.parts
            else None for c in cases]
    if gather:
        everyone = ranks.everyone(mine)
    elif ranks.rank != 0:
        return None
    else:
        everyone, hosts = [mine], hosts[:1]
    results = []
    for index, case in enumerate(cases):
        if not isinstance(case, RankCase):
            results.append(case)
            continue
        if mine[index] is None:
            continue
        per_rank = [theirs[index] for theirs in everyone]
        samples = slowest([s for s, _ in per_rank])
        readings = {}
        for hook in case.hooks:  # each window's reading: the axis's join of the ranks'
            joined = [hook.across_ranks([r[hook.field][w] for _, r in per_rank], hosts)
                      for w in range(len(case.parts))]
            if any(joined):
                readings[hook.field] = hook.record(joined)
        results.append(CaseResult(case.spec, "ok", samples=samples, readings=readings,
                                  **case.fields))
    return results if ranks.rank == 0 else None
