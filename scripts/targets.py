"""Target rows of the docs, computed from the committed results files.

``<!-- targets: NAME:results/A.json,results/B.json -->`` in a document is replaced by a table
with one row per target of the set NAME: each run's figure, and whether the target was met in
every run, in some, or in none. A target is a function of one run that gives (the figure as
text, met or not); the rows never hold a number typed by hand.
"""

from __future__ import annotations

from gdbench.analysis.tables import format_time
from gdbench.records.run import RunResult

FUSED = ("torch-compile", "cupy-fused", "triton-fused")


def _case(run: RunResult, name: str, n: int):
    return next((c for c in run.cases if c.spec.name == name and c.spec.n_samples == n
                 and c.spec.dtype == "float32" and c.ok), None)


def _best(run: RunResult, n: int, throughput: bool):
    cases = [c for c in run.cases if c.spec.n_samples == n and c.reliable
             and (not throughput or c.throughput is not None)]
    return min(cases, key=lambda c: (c.throughput if throughput else c.summary()).median,
               default=None)


def triton_roofline(run: RunResult):
    c = _case(run, "triton-fused", 10**8)
    if c is None:
        return "not measured", False
    tput, lat = run.fraction(c, throughput=True), run.fraction(c)
    return (f"throughput {format_time(c.throughput.median)}: {tput:.0%}; latency "
            f"{format_time(c.summary().median)}: {lat:.0%}", tput >= 0.85)


def _at_most(n: int, seconds: float, throughput: bool):
    def target(run: RunResult):
        c = _best(run, n, throughput)
        if c is None:
            return "not measured", False
        t = (c.throughput if throughput else c.summary()).median
        return f"`{c.spec.name}` {format_time(t)}", t <= seconds
    return target


def fused_within(run: RunResult):
    n = 10**8
    best = _best(run, n, throughput=True)
    ratios = []
    for name in FUSED:
        c = _case(run, name, n)
        if c is None or best is None:
            return f"`{name}` not measured", False
        ratios.append((c.throughput.median / best.throughput.median, name))
    worst, name = max(ratios)
    return (f"throughput within {worst:.2f}× (`{name}`) of the best, `{best.spec.name}` "
            f"{format_time(best.throughput.median)}", worst <= 1.5)


def graph_beats_launch(run: RunResult):
    n, slower = 10**4, []
    pairs = [(c, _case(run, c.spec.name + "+graph", n)) for c in run.cases
             if c.spec.n_samples == n and not c.spec.cuda_graph and c.ok]
    pairs = [(plain, graph) for plain, graph in pairs if graph is not None]
    for plain, graph in pairs:
        if graph.summary().median >= plain.summary().median:
            slower.append(plain.spec.name)
    if not pairs:
        return "no graph rows", False
    if slower:
        return "not for " + ", ".join(f"`{k}`" for k in slower), False
    worst = max(pairs, key=lambda p: p[1].summary().median / p[0].summary().median)
    return (f"all {len(pairs)} kernels; closest: `{worst[0].spec.name}` "
            f"{format_time(worst[1].summary().median)} against "
            f"{format_time(worst[0].summary().median)}", True)


def _above_roofline(throughput: bool):
    """No timed case at 10⁵ samples or more reads faster than the read roofline of its own
    rounds by more than its interval."""
    def target(run: RunResult):
        over, highest = [], (0.0, None)
        for c in run.cases:
            if c.spec.n_samples < 10**5 or not c.reliable or (throughput and c.throughput is None):
                continue
            f = run.fraction(c, throughput=throughput)
            if f is None:
                continue
            summary = c.throughput if throughput else c.summary()
            highest = max(highest, (f, c.spec.name), key=lambda h: h[0])
            if f > 1 + summary.precision:
                over.append(f"`{c.spec.name}` at {c.spec.n_samples:.0e} {f:.0%}")
        top = f"highest {highest[0]:.0%} (`{highest[1]}`)" if highest[1] else "none timed"
        return ("; ".join(over) if over else f"none; {top}"), not over
    return target


def _fraction_at_least(name: str, n: int, share: float, throughput: bool):
    def target(run: RunResult):
        c = _case(run, name, n)
        if c is None or not c.reliable:
            return "not timed", False
        f = run.fraction(c, throughput=throughput)
        return f"{f:.0%}", f >= share
    return target


def _steps_target(n_max: int, seconds: float, k: int):
    """numba-fused at every size up to ``n_max``: at most ``seconds`` per step with K = k."""
    def target(run: RunResult):
        cases = [c for c in run.cases if c.spec.kernel == "numba-fused"
                 and c.spec.steps_per_call == k and c.spec.n_samples <= n_max and c.reliable]
        if not cases:
            return "not measured", False
        worst = max(c.summary().median for c in cases)
        return (", ".join(f"{format_time(c.summary().median)} at {c.spec.n_samples:.0e}"
                          for c in cases), worst <= seconds)
    return target


def no_slower_at_large_n(run: RunResult):
    """numba-fused at 10⁷: K steps per call no slower than one, beyond both intervals."""
    one = next((c for c in run.cases if c.spec.kernel == "numba-fused"
                and c.spec.n_samples == 10**7 and c.spec.steps_per_call == 1 and c.reliable), None)
    many = [c for c in run.cases if c.spec.kernel == "numba-fused" and c.spec.n_samples == 10**7
            and c.spec.steps_per_call > 1 and c.reliable]
    if one is None or not many:
        return "not measured", False
    c = many[0]
    ratio = c.summary().median / one.summary().median
    allowed = 1 + c.summary().precision + one.summary().precision
    return (f"K={c.spec.steps_per_call} {format_time(c.summary().median)} against "
            f"{format_time(one.summary().median)}: {ratio:.2f}×", ratio <= allowed)


def converge_faster(pair):
    """converge at 10⁴ with the tutorial's learning rate (about 500 steps): ``numba-fused``'s
    descent with K steps per call at least 5 times faster than with one; every kernel's ratio
    beside it (at 1/L a descent takes 2 steps, and K per call only adds steps)."""
    base, many = pair
    k = many.settings.get("steps_per_call", 1)
    times = {}
    for result in (base, many):
        for d in result.descents:
            if d.status == "converged" and d.n_samples == 10**4 and d.rule == "tutorial":
                times.setdefault(d.kernel, []).append(d.seconds)
    ratios = {kernel: t[0] / t[1] for kernel, t in times.items() if len(t) == 2}
    if "numba-fused" not in ratios:
        return "not measured", False
    others = ", ".join(f"`{kernel}` {r:.1f}×" for kernel, r in ratios.items()
                       if kernel != "numba-fused")
    return (f"`numba-fused` {ratios['numba-fused']:.1f}× with K={k} (others: {others})",
            ratios["numba-fused"] >= 5)


SETS = {
    "many-steps-small": [
        ("`numba-fused` at 10² and 10³: at most 0.3 µs per step with K = 1000",
         _steps_target(10**3, 0.3e-6, 1000)),
    ],
    "many-steps-large": [
        ("`numba-fused` at 10⁷: no slower with K steps per call than with one (beyond the two "
         "intervals)", no_slower_at_large_n),
    ],
    "converge-steps": [
        ("`converge` at 10⁴, learning rate 0.01: `numba-fused` at least 5 times faster with K "
         "steps per call than with one", converge_faster),
    ],
    "cpu-roofline": [
        ("no case at 10⁵ samples or more above the read roofline by more than its interval "
         "(latency)", _above_roofline(throughput=False)),
        ("the same in throughput", _above_roofline(throughput=True)),
        ("`numba-fused` at 10⁷ float32: 85% of the read roofline (latency)",
         _fraction_at_least("numba-fused", 10**7, 0.85, throughput=False)),
        ("`torch-compile` at 10⁷ float32: 85% of the read roofline (latency)",
         _fraction_at_least("torch-compile", 10**7, 0.85, throughput=False)),
    ],
    "h200": [
        ("`triton-fused` at 10⁸ float32: 85% of the read roofline in throughput",
         triton_roofline),
        ("the best kernel at 10⁶ float32: at most 10 µs per step in latency",
         _at_most(10**6, 10e-6, throughput=False)),
        ("the best kernel at 10⁶ float32: at most 5 µs per step in throughput",
         _at_most(10**6, 5e-6, throughput=True)),
        ("`torch-compile`, `cupy-fused` and `triton-fused` within 1.5× of the best kernel at "
         "10⁸ in throughput", fused_within),
        ("a CUDA-graph replay beats the kernel launched from Python at 10⁴ (latency)",
         graph_beats_launch),
    ],
}


def targets_markdown(name: str, runs: list[RunResult], labels: list[str]) -> list[str]:
    lines = ["| target | " + " | ".join(labels) + " | met? |",
             "|---|" + "---|" * len(labels) + "---|"]
    for text, target in SETS[name]:
        results = [target(run) for run in runs]
        met = [label for label, (_, ok) in zip(labels, results) if ok]
        verdict = ("**met**" if len(runs) == 1 and met
                   else "**not met**" if len(runs) == 1
                   else f"**met** in all {len(runs)} runs" if len(met) == len(runs)
                   else "**not met** in any run" if not met
                   else f"**met** in {len(met)} of {len(runs)} runs ({', '.join(met)})")
        lines.append(f"| {text} | " + " | ".join(figure for figure, _ in results)
                     + f" | {verdict} |")
    return lines
