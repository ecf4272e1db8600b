"""Time to a trained model: gradient descent from w = 0 until the loss is at the optimum.

The optimum is the float64 least-squares solution of the problem (normal equations summed in
float64 chunks and solved, its loss from the reference's float64 residuals). A descent runs a
kernel's steps, reading the loss every ``check_every`` steps (run as one ``run_steps`` call where
the kernel can: ``--steps-per-call``), until the loss is within ``tol``
of the optimum's, relatively. It ends as ``converged``; ``stalled`` when the loss has not come
closer by a hundredth of the tolerance for ``patience`` steps (the format's rounding stops the
weights before the tolerance: float32 at large N, bfloat16); ``max-steps`` or ``max-time`` at
its bounds; ``diverged`` when the loss is no longer finite. The kernel's first step (its
compilation) runs before the clock starts, on a problem then prepared again.

The learning rate is the tutorial's (``tutorial``: 0.01), the data's (``curvature``: 1/L, with
L the largest eigenvalue of the loss's Hessian 2·XᵀX/N), or a number. A direct solve on the
same device (NumPy's ``lstsq``; ``torch.linalg.lstsq`` on CUDA) is the baseline to beat.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gdbench.core.devices import is_cuda
from gdbench.core.dtypes import problem_dtype
from gdbench.core.protocol import run_steps
from gdbench.core.reference import compare_step, loss_and_grad, make_problem, normal_equations
from gdbench.kernels import registry
from gdbench.measure.prepare import failure
from gdbench.measure.environment import capture
from gdbench.records.converge import ConvergeResult, Descent
from gdbench.runs.settings import ConvergeSettings
from gdbench.runs.sweep import plan

TUTORIAL_LR = 0.01
RULES = ("tutorial", "curvature")
TRACE_POINTS = 200  # loss readings kept per descent, spread evenly over its steps' logarithm


@dataclass(frozen=True)
class Optimum:
    w: np.ndarray
    loss: float
    curvature: float  # L, the largest eigenvalue of 2·XᵀX/N

    def to_dict(self) -> dict:
        return {"w": self.w.tolist(), "loss": self.loss, "curvature": self.curvature}


def optimum(x, y) -> Optimum:
    """The float64 least-squares weights, their loss, and the loss's largest curvature."""
    x = np.asarray(x).reshape(len(y), -1)
    n = len(y)
    gram, xty = normal_equations(x, y)
    w = np.linalg.solve(gram, xty)
    return Optimum(w, loss_and_grad(x, y, w)[0], float(2 * np.linalg.eigvalsh(gram / n)[-1]))


def parse_rates(text: str) -> list[str | float]:
    """``"tutorial,curvature,0.1"``: rules by name and learning rates as numbers."""
    rates: list[str | float] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        if token in RULES:
            rates.append(token)
            continue
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"learning rate {token!r} is neither a number nor one of "
                             f"{', '.join(RULES)}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"learning rate {token!r} is not a positive number")
        rates.append(value)
    if not rates:
        raise ValueError("no learning rate given")
    return list(dict.fromkeys(rates))


def learning_rate(rule: str | float, opt: Optimum) -> float:
    return {"tutorial": TUTORIAL_LR, "curvature": 1.0 / opt.curvature}.get(rule, rule)


def descend(kernel, x, y, opt: Optimum, rule, lr: float, tol: float = 1e-6,
            max_steps: int = 100_000, max_seconds: float = 60.0, patience: int = 100,
            check_every: int = 1, warmup_s: float | None = None) -> Descent:
    """Run ``kernel`` from w = 0 until the loss reaches the optimum's.

    Without ``warmup_s`` (the time of a first step already run), a first step is run and
    timed here, before the clock starts.
    """
    facts = dict(kernel=kernel.name, device=kernel.device, dtype=kernel.dtype,
                 n_samples=len(y), n_features=np.asarray(x).reshape(len(y), -1).shape[1],
                 rule=str(rule), lr=lr, warmup_s=warmup_s)
    if warmup_s is None:
        kernel.prepare(x, y, w0=0.0, lr=lr)
        facts["warmup_s"] = _first_step(kernel)
    kernel.prepare(x, y, w0=0.0, lr=lr)
    kernel.synchronize()
    trace, steps, best, since_best = [], 0, math.inf, 0
    start = time.perf_counter()
    while True:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging descent overflows
            run_steps(kernel, check_every)  # one call where the kernel can (run_steps)
            loss = kernel.loss  # waits for the device; the loss at the weights before the step
        steps += check_every
        seconds = time.perf_counter() - start
        trace.append([steps, seconds, loss])
        excess = (loss - opt.loss) / opt.loss
        if loss < best - 0.01 * tol * opt.loss:
            best, since_best = loss, 0
        else:
            since_best += check_every
        status = ("diverged" if not math.isfinite(loss) else "converged" if excess <= tol
                  else "stalled" if since_best >= patience else "max-steps" if steps >= max_steps
                  else "max-time" if seconds >= max_seconds else None)
        if status:
            break
    w = kernel.weight.astype(np.float64)
    message = {"stalled": f"no closer for {since_best} steps at {excess:.3g} above the optimum",
               "max-steps": f"{excess:.3g} above the optimum after {steps} steps",
               "max-time": f"{excess:.3g} above the optimum after {seconds:.3g} s",
               "diverged": f"loss became {loss}"}.get(status, "")
    return Descent(**facts, status=status, message=message, steps=steps, seconds=seconds,
                   loss=loss, excess=excess,
                   weight_error=float(np.linalg.norm(w - opt.w) / np.linalg.norm(opt.w)),
                   trace=thin(trace))


def _first_step(kernel, k: int = 1) -> float:
    """Seconds of the first step, and of a first call of ``k`` steps when k > 1 (each may
    compile)."""
    t0 = time.perf_counter()
    kernel.step()
    if k > 1:
        run_steps(kernel, k)
    kernel.synchronize()
    return time.perf_counter() - t0


def thin(trace: list, points: int = TRACE_POINTS) -> list:
    """At most ``points`` readings, spread evenly over the logarithm of the step, the last kept."""
    if len(trace) <= points:
        return trace
    wanted = np.unique(np.geomspace(1, len(trace), points).astype(int) - 1)
    return [trace[i] for i in wanted]


def direct_solve(x, y, opt: Optimum, device: str, dtype: str, repeats: int = 5) -> dict:
    """The least-squares solve on ``device`` in ``dtype`` (float32 for half precision): its
    median time over ``repeats`` and how close it gets; the data are on the device already."""
    dtype = problem_dtype(dtype)
    x2 = np.ascontiguousarray(np.asarray(x).reshape(len(y), -1), dtype)
    y1 = np.ascontiguousarray(y, dtype)
    if is_cuda(device):
        import torch

        xd, yd = torch.from_numpy(x2).cuda(), torch.from_numpy(y1).cuda()[:, None]

        def solve():
            w = torch.linalg.lstsq(xd, yd).solution
            torch.cuda.synchronize()
            return w.cpu().numpy().reshape(-1)

        method = "torch.linalg.lstsq"
    else:
        def solve():
            return np.linalg.lstsq(x2, y1, rcond=None)[0]

        method = "numpy.linalg.lstsq"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        w = solve()
        times.append(time.perf_counter() - t0)
    w = np.asarray(w, np.float64)
    loss = loss_and_grad(x2, y1, w)[0]
    return {"method": method, "device": device, "dtype": dtype, "n_samples": len(y),
            "seconds": float(np.median(times)), "excess": (loss - opt.loss) / opt.loss,
            "weight_error": float(np.linalg.norm(w - opt.w) / np.linalg.norm(opt.w))}


def converge(settings: ConvergeSettings, save=None, on_start=None) -> ConvergeResult:
    """Every kernel in every dtype and learning rate at every size, from w = 0 to the optimum.

    ``save(result)`` is called after every descent; ``on_start(label, done, total)`` before.
    """
    s = settings.checked()
    skipped: list[str] = []
    specs = plan(s.device, s.kernels, s.sizes, s.n_features, list(s.dtypes), skipped=skipped)
    result = ConvergeResult(capture(s.device), s.record(
        kernels=list(dict.fromkeys(spec.kernel for spec in specs)), skipped=skipped))
    save = save or (lambda r: None)
    total, done = len(specs) * len(s.rates), 0
    try:
        for n in s.sizes:
            problems = {}
            for spec in (c for c in specs if c.n_samples == n):
                pd = problem_dtype(spec.dtype)
                if pd not in problems:
                    x, y = make_problem(n, s.n_features, pd, s.seed)
                    opt = optimum(x, y)
                    if not opt.loss > 0:  # data on a line through 0: nothing to be relative to
                        raise ValueError(f"the data of N = {n} fit the model exactly (the "
                                         "optimum's loss is 0): choose a larger N")
                    problems[pd] = x, y, opt
                    result.optima.append({"n_samples": n, "dtype": pd, **opt.to_dict()})
                    result.direct.append(direct_solve(x, y, opt, s.device, pd))
                x, y, opt = problems[pd]
                for rule in s.rates:
                    if on_start:
                        on_start(f"{spec.name} N={n} lr={rule}", done, total)
                    result.descents.append(_one(spec, x, y, opt, rule, s))
                    done += 1
                    save(result)
        result.complete = True
    finally:
        save(result)
    return result


def _one(spec, x, y, opt, rule, s: ConvergeSettings) -> Descent:
    lr = learning_rate(rule, opt)
    try:
        kernel = registry.make_kernel(spec.kernel, spec.device, spec.dtype)
        kernel.prepare(x, y, w0=0.0, lr=lr)
        warmup_s = _first_step(kernel, s.steps_per_call)  # compilation included
        kernel.prepare(x, y, w0=0.0, lr=lr)
        kernel.step()
        wrong = compare_step(kernel, x, y, 0.0, lr)
        if wrong:
            return Descent(spec.kernel, spec.device, spec.dtype, spec.n_samples,
                           spec.n_features, str(rule), lr, "wrong", wrong, warmup_s=warmup_s)
        return descend(kernel, x, y, opt, rule, lr, s.tol, s.max_steps, s.max_seconds,
                       s.patience, s.check_every, warmup_s)
    except Exception as exc:
        case = failure(spec, exc)
        return Descent(spec.kernel, spec.device, spec.dtype, spec.n_samples, spec.n_features,
                       str(rule), lr, case.status, case.message)


