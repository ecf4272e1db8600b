"""The ``gdbench`` command line: parse arguments, call the library, print.

Every error a user can cause becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from gdbench import registry
from gdbench.analysis.compare import parse_threshold
from gdbench.devices import resolve_device
from gdbench.paths import check_folder, check_report_target, check_target, move_aside
from gdbench.results import write_atomic


class ArgumentParser(argparse.ArgumentParser):
    """One line and exit status 2 for a bad option; an option is never taken for another that
    it begins (``noise --out`` is not ``--out-dir``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def stdout_console():
    """A rich console for stdout; a file or pipe gets whole tables, not 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def cmd_train(args) -> int:
    from gdbench.train import predict, train

    kernel = registry.make_kernel(args.kernel, resolve_device(args.device), args.dtype)
    if args.print_every < 1:
        raise ValueError(f"--print-every must be at least 1, got {args.print_every}")
    print(f"Prediction before training: f(5) = {predict(args.w0):.3f}")
    w = args.w0
    for e in train(kernel, iters=args.iters, lr=args.lr, w0=args.w0):
        w = e.w
        if (e.epoch - 1) % args.print_every == 0 or e.epoch == args.iters or not e.finite:
            print(f"epoch {e.epoch}: w = {e.w:.3f}, loss = {e.loss:.8f}")
        if not e.finite:
            print(f"gdbench train: diverged at epoch {e.epoch}: the loss is {e.loss} (the "
                  f"learning rate {args.lr} is too large for this data)", file=sys.stderr)
            return 1
    print(f"Prediction after training: f(5) = {predict(w):.3f}")
    return 0


def cmd_list(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from gdbench.dtypes import SHORT

    table = Table("kernel", "backend", "phases", "features", "dtypes", "CUDA graph",
                  "data-parallel", *(f"{d}" for d in ("cpu", "cuda")))
    for info in registry.list_kernels():
        cells = []
        for device in ("cpu", "cuda"):
            if "any" in info.unavailable:  # a plugin that failed to load: why, everywhere
                cells.append(f"[red]{escape(info.unavailable['any'])}[/red]")
            elif device not in info.devices:
                cells.append("-")
            elif info.available_on(device):
                cells.append("[green]available[/green]")
            else:
                cells.append(f"[red]{escape(info.unavailable[device])}[/red]")
        phases = {("step",): "fused step", (): "?"}.get(tuple(info.phases), "3 phases")
        features = "any" if info.max_features is None else f"≤ {info.max_features}"
        graph = "yes" if info.cuda_graph else "-" if "cuda" not in info.devices else "no"
        parallel = "yes" if info.data_parallel else "no"
        dtypes = " ".join(SHORT.get(d, d) for d in info.dtypes)
        table.add_row(info.name, info.backend, phases, features, dtypes, graph, parallel, *cells)
    for name, target in registry.shadowed_plugins():
        why = f"[red]not loaded: plugin {escape(target)} has the name of a built-in kernel[/red]"
        table.add_row(f"{name} (plugin)", "?", "", "", "", "", "", why, why)
    stdout_console().print(table)
    return 0


def _sweep(args, out, csv=None, probe=None, label=""):
    """``gdbench.run`` with the run options of ``args``, behind a progress bar on a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gdbench.measure import sweep
    from gdbench.measure.threads import parse_threads

    kernels = "all" if args.kernels == "all" else [k.strip() for k in args.kernels.split(",")]
    sizes = sweep.parse_sizes(args.sizes) if args.sizes is not None else None
    threads = parse_threads(args.threads) if args.threads is not None else None
    err = Console(stderr=True, soft_wrap=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
                        disable=args.quiet or not err.is_terminal)
    task = progress.add_task("starting", total=None)

    def on_start(spec, index, total):
        progress.update(task, description=label + spec.label, total=total, completed=index)

    with progress:
        return sweep.run(args.device, kernels, sizes, n_features=args.features,
                         dtype=args.dtype, threads=threads, budget=args.budget,
                         precision=args.precision,
                         cuda_graph=args.cuda_graph,
                         probe=not args.no_probe if probe is None else probe,
                         windows=args.windows, cold=args.cold, remeasure=not args.no_remeasure,
                         processes=args.processes, memory=not args.no_memory,
                         fresh=not args.keep_layout,
                         out=out, csv=csv, on_start=on_start)


def cmd_run(args) -> int:
    from rich.console import Console

    from gdbench.distributed import worker
    from gdbench.distributed.launch import RankFailure
    from gdbench.results import Output

    err = Console(stderr=True, soft_wrap=True)
    if worker.launched() or args.nproc:
        _check_data_parallel_options(args)
    if worker.launched():  # one rank of torchrun or of the agent behind --nproc
        result = _rank(args)
        if result is None or args.quiet:  # ranks other than 0 show nothing
            return 0
        return _show(args, result, err)
    output = Output(args.out, args.csv)  # every path is checked before anything is measured
    if args.plot:
        check_folder(args.plot, "--plot")
    try:
        result = _launch(args, output) if args.nproc else _sweep(args, output)
    except KeyboardInterrupt as stop:
        return _interrupted("run", stop, output, "windows measured")
    except RankFailure as exc:  # one line, and the cases so far are kept
        partial = output.abandon()
        print(f"gdbench run: {exc}" + (f"; the cases finished so far are in {partial}"
                                       if partial else "; no case had finished"),
              file=sys.stderr)
        return 1
    return _show(args, result, err)


def _interrupted(command: str, stop: KeyboardInterrupt, output, what: str) -> int:
    """One line for a command stopped by Ctrl-C or SIGTERM: where its partial results are (if
    anything was measured), and that the files it would have replaced are untouched."""
    partial = output.abandon()
    where = f"the {what} so far are in {partial}" if partial else "nothing had been measured"
    kept = [str(p) for p in output.paths if p.exists()]
    print(f"gdbench {command}: {stop.args[0] if stop.args else 'interrupted'}: {where}"
          + (f"; {' and '.join(kept)} {'is' if len(kept) == 1 else 'are'} as it was"
             if kept else ""), file=sys.stderr)
    return getattr(stop, "status", 130)


def _show(args, result, err) -> int:
    """The table and the failures; exit status 1 when no case was timed."""
    from gdbench.analysis import tables

    if not args.quiet:
        stdout_console().print(tables.step_table(result, stdout_console().width,
                                                 getattr(args, "detail", False)))
        for line in tables.failures(result):
            err.print(line, markup=False, highlight=False)
    timed = any(c.ok for c in result.cases)
    from gdbench.analysis.plot import plot

    _wrote(err, f"{args.out}" + (f" and {args.csv}" if args.csv else ""), result.moved_aside,
           args.plot if timed else None, lambda: plot([result], args.plot))
    if not timed:
        err.print(f"gdbench run: no case was timed ({len(result.cases)} failed); their reasons "
                  f"are in {args.out}", markup=False, highlight=False)
        return 1
    return 0


def _wrote(err, written: str, moved, plot_dir, make_plots) -> None:
    """Where the results went, what was moved aside for them, and the plots if asked for."""
    err.print(f"wrote {written}", markup=False)
    for kept in moved:
        err.print(f"kept the earlier results as {kept}", markup=False)
    if plot_dir:
        err.print(f"wrote {len(make_plots())} plots to {plot_dir}", markup=False)


def _check_data_parallel_options(args) -> None:
    from gdbench.dtypes import parse_dtypes

    for flag, used in (("--cuda-graph", args.cuda_graph), ("--cold", args.cold),
                       ("--processes", args.processes != 1), ("--threads", args.threads)):
        if used:
            raise ValueError(f"{flag} does not go with a data-parallel run (--nproc, torchrun)")
    if len(parse_dtypes(args.dtype)) > 1:
        raise ValueError("a data-parallel run (--nproc, torchrun) takes one --dtype")
    if not args.dist_timeout > 0:
        raise ValueError(f"--dist-timeout must be a positive number of seconds, got "
                         f"{args.dist_timeout}")


def _sizes(args, device):
    from gdbench.measure import sweep

    return sweep.parse_sizes(args.sizes) if args.sizes is not None else \
        sweep.default_sizes(device)


def _rank(args):
    """This process's rank of a data-parallel run; the result on rank 0, else None."""
    from gdbench.distributed.worker import measure

    device = resolve_device(args.device)
    kernels = "all" if args.kernels == "all" else [k.strip() for k in args.kernels.split(",")]
    return measure(device, kernels, _sizes(args, device), args.features, args.dtype,
                   args.budget, args.precision, windows=args.windows,
                   backend=args.dist_backend, timeout_s=args.dist_timeout, out=args.out,
                   csv=args.csv)


def _launch(args, output):
    """``--nproc``: the agent starts the ranks, once per world size."""
    from rich.console import Console

    from gdbench.distributed.launch import launch, parse_world_sizes
    from gdbench.distributed.worker import data_parallel_kernels

    device = resolve_device(args.device)
    world_sizes = parse_world_sizes(args.nproc)
    kernels = "all" if args.kernels == "all" else [k.strip() for k in args.kernels.split(",")]
    names = data_parallel_kernels(device, args.dtype, kernels)
    if not names:
        raise ValueError(f"no kernel runs data-parallel on {device} in {args.dtype} here")
    options = {"device": device, "kernels": names, "sizes": _sizes(args, device),
               "n_features": args.features, "dtype": args.dtype, "budget": args.budget,
               "precision": args.precision, "windows": args.windows,
               "timeout_s": args.dist_timeout, "backend": args.dist_backend,
               "weak": args.weak_scaling}
    err = Console(stderr=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if max(world_sizes) > cores:
        err.print(f"warning: {max(world_sizes)} ranks on {cores} CPUs: the ranks wait for each "
                  "other's CPU time, and the scaling measured is that of a crowded machine",
                  markup=False, highlight=False)

    def on_launch(world):
        if not args.quiet:
            err.print(f"starting {world} rank{'s' if world > 1 else ''} ..." if world else
                      "measuring the plain step in one process ...", markup=False)

    return launch(options, world_sizes, output, device, args.dist_port, on_launch)


def cmd_converge(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gdbench.analysis.convergence import converge_tables, plot_converge
    from gdbench.converge import converge, parse_rates
    from gdbench.dtypes import parse_dtypes
    from gdbench.measure.sweep import parse_sizes
    from gdbench.results import Output

    device = resolve_device(args.device)
    kernels = "all" if args.kernels == "all" else [k.strip() for k in args.kernels.split(",")]
    output = Output(args.out)
    if args.plot:
        check_folder(args.plot, "--plot")
    err = Console(stderr=True, soft_wrap=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True,
                        disable=args.quiet or not err.is_terminal)
    task = progress.add_task("starting", total=None)

    def on_start(label, done, total):
        progress.update(task, description=label, total=total, completed=done)

    try:
        with progress:
            result = converge(device, kernels, parse_sizes(args.sizes), args.features,
                              parse_dtypes(args.dtype), parse_rates(args.lr), args.tol,
                              args.max_steps, args.max_seconds, args.patience, args.check_every,
                              save=output.save, on_start=on_start)
    except KeyboardInterrupt as stop:
        return _interrupted("converge", stop, output, "descents")
    output.finish(result)
    if not args.quiet:
        stdout_console().print(converge_tables(result))
        for why in result.settings.get("skipped", []):
            err.print(f"not run: {why}", markup=False, highlight=False)
    _wrote(err, args.out, output.moved, args.plot, lambda: plot_converge([result], args.plot))
    return 0


def cmd_noise(args) -> int:
    from rich.table import Table

    from gdbench.analysis.noise import assess, read_floor, write_floor

    if args.paired:
        return _noise_paired(args)
    if args.runs < 2:
        raise ValueError(f"--runs must be at least 2, got {args.runs}")
    threshold = parse_threshold(args.threshold)
    floor = read_floor(args.noise) if args.noise else None
    folder = check_folder(args.out_dir, "--out-dir")
    paths = [check_target(folder / f"noise-{i + 1}.json", "--out-dir")
             for i in range(args.runs)]
    floor_path = check_target(folder / "noise.json", "--out-dir")
    runs = [_sweep(args, path, probe=False, label=f"run {index + 1}/{args.runs}: ")
            for index, path in enumerate(paths)]
    report = assess(runs, threshold, floor)
    kept = move_aside(floor_path)
    write_floor(report, floor_path, [str(p) for p in paths])
    if kept:
        print(f"kept the earlier noise floor as {kept}", file=sys.stderr)
    files = ", ".join(map(str, paths))
    table = Table("case", "spread of the medians between runs",
                  title=f"{args.runs} runs of the same configuration ({files})")
    for label, spread in sorted(report.spreads.items(), key=lambda kv: -kv[1]):
        table.add_row(label, f"{spread:.1%}")
    stdout_console().print(table)
    v = report.verdicts
    given = f"with the noise floor of {args.noise}" if floor else "without a noise floor"
    print(f"identical runs compared at a {threshold:.0%} threshold, {given}: "
          f"{report.comparisons} cases, {v['FASTER']} faster, {v['SLOWER']} slower, "
          f"{v['SAME']} same, {v['AMBIGUOUS']} ambiguous: false verdicts {report.false_rate:.1%}")
    for factor, share in report.detected.items():
        print(f"samples made {factor - 1:.0%} slower: called SLOWER in {share:.1%} of cases")
    print(f"noise floor of these runs: {report.floor.default:.1%} relative standard deviation "
          f"between runs (median over cases); per case in {floor_path}, for "
          f"gdbench compare --noise")
    return 0


def _noise_paired(args) -> int:
    """``noise --paired``: the A/A false-verdict rate and the power of ``ab`` here."""
    from gdbench.ab.session import Settings
    from gdbench.ab.study import study
    from gdbench.measure.sweep import default_sizes, parse_sizes

    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    device = resolve_device(args.device)
    if "," in args.dtype:
        raise ValueError("noise --paired takes one --dtype")
    settings = Settings(device, tuple(parse_sizes(args.sizes) if args.sizes else
                                      default_sizes(device)), args.features, args.dtype,
                        parse_threshold(args.threshold))
    kernels = _kernel_list(args.kernels, device, args.dtype, args.features)
    folder = check_folder(args.out_dir, "--out-dir")

    def on_session(kind, index, runs):
        if not args.quiet:
            print(f"{'A/A' if kind == 'aa' else 'slowed'} session {index + 1}/{runs} ...",
                  file=sys.stderr)

    s = study(kernels, settings, args.runs, folder, not args.no_power, on_session)
    aa = s["aa"]
    print(f"A/A, {aa['comparisons']} comparisons at a {settings.threshold:.0%} threshold: "
          f"{aa['FASTER'] + aa['SLOWER']} false verdicts ({aa['false_rate']:.1%}), "
          f"{aa['SAME']} same ({aa['same_rate']:.1%}), {aa['AMBIGUOUS']} ambiguous")
    for name, p in s["power"].items():
        print(f"{name}: measured ratio {p['median_ratio']:.3f}, called SLOWER in "
              f"{p['slower']:.0%} of {p['comparisons']}")
    print(f"{len(s['sessions'])} sessions in {s['seconds']:.0f} s; summary in "
          f"{folder / 'paired.json'}" + (f" (the earlier one kept as {s['kept']})"
                                          if s["kept"] else ""))
    return 0


def _parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    from gdbench.measure.sweep import parse_sizes

    sizes = parse_sizes(text)
    if len(sizes) != 1:
        raise ValueError(f"--size takes one sample count, got {text!r}")
    return sizes[0]


def _read_runs(paths):
    from gdbench.results import read_json

    return [read_json(p) for p in paths]


def _converge_files(paths) -> list | None:
    """The converge results in ``paths``, None when they are runs; ValueError for a mix."""
    import json

    from gdbench.converge import read_converge

    kinds = []
    for path in paths:
        try:
            kinds.append(json.loads(Path(path).read_text()).get("kind", "run"))
        except (OSError, ValueError, AttributeError):
            kinds.append("run")  # read_json says what is wrong with it
    if "converge" not in kinds:
        return None
    if set(kinds) != {"converge"}:
        raise ValueError("converge files and run files go in plots and reports of their own")
    return [read_converge(p) for p in paths]


def cmd_plot(args) -> int:
    from gdbench.analysis.findings import run_labels
    from gdbench.analysis.plot import plot

    converged = _converge_files(args.results)
    if converged:
        from gdbench.analysis.convergence import plot_converge

        check_folder(args.output, "-o")
        print("\n".join(str(p) for p in plot_converge(converged, args.output)))
        return 0
    size = _parse_size(args.size)
    runs = _read_runs(args.results)
    check_folder(args.output, "-o")
    if not any(c.ok for run in runs for c in run.cases):
        return _nothing_timed("plot", runs, args.results)
    paths = plot(runs, args.output, size, run_labels(runs, args.results))
    print("\n".join(str(p) for p in paths))
    return 0


def _nothing_timed(command: str, runs, paths) -> int:
    """No case of ``runs`` was timed: each failure on a line, exit status 1."""
    from gdbench.analysis.tables import failures

    print(f"gdbench {command}: no case in {', '.join(map(str, paths))} was timed, so there is "
          "nothing to plot:", file=sys.stderr)
    for run in runs:
        for line in failures(run):
            print(f"  {line}", file=sys.stderr)
    return 1


def cmd_report(args) -> int:
    from gdbench.analysis.report import write_report

    out = check_report_target(args.output, "-o")
    converged = _converge_files(args.results)
    if converged:
        from gdbench.analysis.convergence import write_converge_report

        print(write_converge_report(converged, args.results, out))
        return 0
    size = _parse_size(args.size)
    print(write_report(_read_runs(args.results), args.results, out, size))
    return 0


def cmd_compare(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from gdbench.analysis.compare import VERDICTS, compare
    from gdbench.analysis.noise import read_floor
    from gdbench.analysis.tables import format_time

    threshold = parse_threshold(args.threshold)
    noise = read_floor(args.noise) if args.noise else None
    rows = compare(args.base, args.new, threshold, noise)
    colors = {"FASTER": "green", "SLOWER": "red", "SAME": "", "AMBIGUOUS": "yellow"}
    title = f"{args.new} against {args.base} (threshold {threshold:.0%})"
    table = Table("case", "base", "new", "new / base", "95% interval", "verdict", title=title)
    reasons = sorted({text for r in rows for text in (r.why, r.note) if text})
    for r in rows:
        color = colors[r.verdict]
        verdict = f"[{color}]{r.verdict}[/{color}]" if color else r.verdict
        for text in (r.why, r.note):
            if text:
                verdict += f" ({reasons.index(text) + 1})"
        table.add_row(escape(r.label) + r.flags, format_time(r.base_median),
                      format_time(r.new_median), f"{r.ratio:.3f}", f"{r.low:.3f} – {r.high:.3f}",
                      verdict)
    stdout_console().print(table)
    print(f"noise floor from {args.noise}" if noise and noise.cases else
          f"noise floor {noise.default:.1%}" if noise else
          "no noise floor: the intervals hold the variation within each run only "
          "(gdbench noise measures the variation between runs; pass it with --noise)")
    for index, why in enumerate(reasons):
        print(f"({index + 1}) {why}")
    if any(r.flags for r in rows):
        print("~ noisy, ^ contended: in either file")
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    print(", ".join(f"{n} {v.lower()}" for v, n in counts.items()))
    return 1 if args.fail_on_regression and counts["SLOWER"] else 0


def cmd_ab(args) -> int:
    from rich.console import Console

    from gdbench.ab import summary
    from gdbench.ab.session import Settings, Side, pair_cases, run_ab
    from gdbench.measure.sweep import default_sizes, parse_sizes
    from gdbench.results import Output

    device = resolve_device(args.device)
    if "," in args.dtype:
        raise ValueError("gdbench ab takes one --dtype")
    settings = Settings(device, tuple(parse_sizes(args.sizes) if args.sizes else
                                      default_sizes(device)), args.features, args.dtype,
                        parse_threshold(args.threshold), window_s=args.window,
                        rounds_per_block=args.rounds_per_block, min_blocks=args.min_blocks,
                        max_blocks=args.max_blocks, max_seconds=args.max_time)
    sides = []
    for name, python, rev in (("base", args.base_python, args.base_rev),
                              ("new", args.new_python, args.new_rev)):
        if python and rev:
            raise ValueError(f"--{name}-python and --{name}-rev name one side twice")
        sides.append(Side.of_python(name, python) if python else
                     Side.of_revision(name, rev) if rev else Side(name))
    names = [_kernel_list(text, device, args.dtype, args.features) for text in (args.base,
                                                                                args.new)]
    cases = pair_cases(*names, settings.sizes)
    output = Output(args.out)
    markdown = check_report_target(args.markdown, "--markdown") if args.markdown else None
    err = Console(stderr=True, soft_wrap=True)

    def on_round(index, block, active):
        if not args.quiet:
            err.print(f"round {index + 1} (block {block + 1}): {active} "
                      f"case{'s' if active > 1 else ''} undecided", markup=False,
                      highlight=False)

    try:
        result = run_ab(tuple(sides), cases, settings, output.save, on_round)
    except KeyboardInterrupt as stop:
        return _interrupted("ab", stop, output, "rounds measured")
    output.finish(result)
    title = (f"{sides[1].source}: {args.new or 'all'} against {sides[0].source}: "
             f"{args.base or 'all'}")
    stdout_console().print(summary.table(result, title))
    table_rows = summary.rows(result)
    print(", ".join(f"{n} {v.lower()}" for v, n in summary.counts(table_rows).items())
          + f" in {result.rounds} rounds, {result.blocks} blocks ({result.seconds:.0f} s)")
    if markdown:
        write_atomic(markdown, summary.markdown(result, title))
    _wrote(err, str(args.out) + (f" and {markdown}" if markdown else ""), output.moved, None,
           None)
    slower = any(r["verdict"] == "SLOWER" for r in table_rows)
    return 1 if args.fail_on_regression and slower else 0


def _kernel_list(text: str | None, device: str, dtype: str, n_features: int) -> list[str]:
    """The kernels of a side: named, or all that run on ``device`` in ``dtype`` here."""
    if text and text != "all":
        names = [k.strip() for k in text.split(",") if k.strip()]
        for name in names:
            registry.kernel_class(name)  # unknown: one line with the known names
        return names
    from gdbench.measure.sweep import plan

    return list(dict.fromkeys(s.kernel for s in plan(device, "all", [100], n_features, dtype)))


def cmd_probe(args) -> int:
    from gdbench.analysis.tables import format_bytes
    from gdbench.measure.probe import probe

    result = probe(args.device)
    print(f"{result.device}: roofline {result.bandwidth / 1e9:.1f} GB/s from memory "
          f"({result.best_method}, {format_bytes(result.nbytes)} streamed)")
    for method, rate in result.methods.items():
        print(f"  {method:20s} {rate / 1e9:8.1f} GB/s")
    levels = sorted(result.levels.items(), key=lambda kv: kv[1])
    print("bandwidth against the working set (the caches as "
          + ("the driver" if result.device == "cuda" else "the OS") + " reports them: "
          + (", ".join(f"{name} {format_bytes(size)}" for name, size in levels) or "none") + ")")
    for size, rate in sorted(result.curve.items()):
        level = next((name for name, cap in levels if size <= cap), "memory")
        print(f"  {format_bytes(size):>10s} {rate / 1e9:8.1f} GB/s   fits in {level}")
    return 0


def dtypes(text: str) -> str:
    """A ``--dtype`` list with every name spelled in full (``bf16`` is ``bfloat16``)."""
    from gdbench.dtypes import parse_dtypes

    try:
        return ",".join(parse_dtypes(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def one_dtype(text: str) -> str:
    """One dtype, full or short name; a kernel says which it supports."""
    from gdbench.dtypes import ALIASES

    return ALIASES.get(text, text)


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1-65535")
    return value


def add_run_options(p) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--kernels", default="all", help="comma-separated names, or all (default)")
    p.add_argument("--sizes", help="1e2,1e4,1e6 or 1e2:1e8 (default 1e2:1e7 on cpu, to 1e8 on cuda)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes,
                   help="float32 (default), float64, bfloat16 or float16 (or fp32, fp64, bf16, "
                        "fp16), or several: float32,bfloat16")
    p.add_argument("--threads", help="CPU thread counts of torch, Numba and BLAS, such as 1,2: "
                                     "every case at each (default: as the libraries are set)")
    p.add_argument("--budget", type=float, default=0.5,
                   help="seconds of latency sampling per case, shared by its windows")
    p.add_argument("--precision", type=float, default=0.02,
                   help="a window stops once its median is known to this relative precision, "
                        "and a case is noisy when its own is worse (default 0.02)")
    p.add_argument("--windows", type=int, default=4,
                   help="windows per case, spread over the run (default 4)")
    p.add_argument("--cold", action="store_true",
                   help="flush the caches before every latency sample (no batches)")
    p.add_argument("--no-remeasure", action="store_true",
                   help="do not measure a contended case a second time")
    p.add_argument("--no-memory", action="store_true",
                   help="do not measure each case's step memory before timing it")
    p.add_argument("--keep-layout", action="store_true",
                   help="measure every window of a case on the instance prepared first, rather "
                        "than on a new instance with fresh buffers (as gdbench 0.1 did)")
    p.add_argument("--processes", type=int, default=1,
                   help="measure the windows in this many fresh processes, one after another")
    p.add_argument("--nproc", help="data-parallel over this many local ranks, or a list of "
                                   "world sizes such as 1,2 (torch.distributed's elastic agent)")
    p.add_argument("--dist-backend", choices=("gloo", "nccl"),
                   help="torch.distributed backend (default: gloo on cpu, nccl on cuda)")
    p.add_argument("--dist-timeout", type=float, default=120.0,
                   help="seconds a collective or a rendezvous may wait before the run ends")
    p.add_argument("--weak-scaling", action="store_true",
                   help="with --nproc, also measure P ranks at P times each size (on when 1 is "
                        "among the world sizes)")
    p.add_argument("--dist-port", type=port, help="rendezvous port on 127.0.0.1 (default: free)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.add_argument("--detail", action="store_true",
                   help="table cells with throughput, phases, GB/s and memory besides latency")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also replay each kernel's step from a CUDA graph where it can be captured")
    p.add_argument("--no-probe", action="store_true",
                   help="skip measuring the memory bandwidth (no %% of roofline)")


def build_parser() -> ArgumentParser:
    import gdbench

    parser = ArgumentParser(prog="gdbench", description=gdbench.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gdbench {gdbench.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    p = sub.add_parser("train", help="replay the tutorial's training loop on one kernel")
    p.add_argument("--kernel", default="numpy-manual")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--dtype", default="float32", type=one_dtype)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--w0", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--print-every", type=int, default=1)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="time every kernel over a sweep of sample counts")
    add_run_options(p)
    p.add_argument("--out", default="gdbench-results.json", help="JSON results file")
    p.add_argument("--csv", help="also write a CSV file")
    p.add_argument("--plot", metavar="DIR", help="also write the plots into DIR")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("converge", help="time gradient descent to the least-squares optimum, "
                                        "against a direct solve")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--kernels", default="all", help="comma-separated names, or all (default)")
    p.add_argument("--sizes", default="1e4,1e6", help="sample counts (default 1e4,1e6)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes, help="one or several, as for run")
    p.add_argument("--lr", default="tutorial,curvature",
                   help="learning rates: tutorial (0.01), curvature (1/L of the data), or "
                        "numbers (default tutorial,curvature)")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="converged when the loss is within this of the optimum's, relatively")
    p.add_argument("--max-steps", type=int, default=100_000, help="steps per descent at most")
    p.add_argument("--max-seconds", type=float, default=60.0, help="seconds per descent at most")
    p.add_argument("--patience", type=int, default=100,
                   help="stalled after this many steps without coming closer")
    p.add_argument("--check-every", type=int,
                   help="steps between loss readings (default 1 on cpu, 10 on cuda)")
    p.add_argument("--out", default="gdbench-converge.json", help="JSON results file")
    p.add_argument("--plot", metavar="DIR", help="also write the loss-against-time plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=cmd_converge)

    p = sub.add_parser("noise", help="run one configuration several times: how far identical "
                                     "runs differ here, and what compare makes of it")
    add_run_options(p)
    p.add_argument("--runs", type=int, default=2, help="how many runs (default 2)")
    p.add_argument("--threshold", default="5%", help="compare's threshold (default 5%%)")
    p.add_argument("--out-dir", default=".",
                   help="folder for noise-1.json, noise-2.json, ... and noise.json")
    p.add_argument("--noise", help="judge the runs with this noise floor (a noise file of an "
                                   "earlier study, or a fraction such as 3%%)")
    p.add_argument("--paired", action="store_true",
                   help="measure what gdbench ab promises here instead: --runs A/A sessions of "
                        "the kernels, and as many of numpy-manual against the slowed copies of "
                        "the example plugin (paired-*.json and paired.json in --out-dir)")
    p.add_argument("--no-power", action="store_true",
                   help="with --paired, the A/A sessions only")
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("plot", help="plot scaling, bandwidth and phases of results files")
    p.add_argument("results", nargs="+", help="gdbench results JSON files")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the plots")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="write a Markdown report with plots and findings")
    p.add_argument("results", nargs="+", help="gdbench results JSON files")
    p.add_argument("-o", "--output", required=True, metavar="FILE.md")
    p.add_argument("--size", help="sample count of the phase plot (default: the largest)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="compare two runs: ratios and verdicts per case")
    p.add_argument("base", help="gdbench or pytest-benchmark JSON of the baseline")
    p.add_argument("new", help="gdbench or pytest-benchmark JSON to judge")
    p.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any case is SLOWER")
    p.add_argument("--noise", help="variation of a case between runs on this machine: a noise "
                                   "file of gdbench noise, or a relative standard deviation "
                                   "such as 3%%")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("ab", help="is NEW faster than BASE? Both measured in one session, "
                                  "interleaved, with a paired verdict per case")
    p.add_argument("base", nargs="?", help="the base side's kernels, comma-separated "
                                           "(default: every kernel that runs here)")
    p.add_argument("new", nargs="?", help="the new side's kernels, paired with the base's "
                                          "in order (default: the same as the base)")
    p.add_argument("--base-python", help="run the base side in this Python environment")
    p.add_argument("--new-python", help="run the new side in this Python environment")
    p.add_argument("--base-rev", help="run the base side from this git revision of the "
                                      "checkout here (a cached worktree, this environment's "
                                      "packages)")
    p.add_argument("--new-rev", help="run the new side from this git revision")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.add_argument("--sizes", help="sample counts (default 1e2:1e7 on cpu, to 1e8 on cuda)")
    p.add_argument("--features", type=int, default=1, help="features D (default 1)")
    p.add_argument("--dtype", default="float32", type=dtypes, help="one dtype (default float32)")
    p.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    p.add_argument("--window", type=float, default=0.05,
                   help="seconds of sampling per window (default 0.05)")
    p.add_argument("--rounds-per-block", type=int, default=3,
                   help="rounds measured by each pair of fresh worker processes (default 3)")
    p.add_argument("--min-blocks", type=int, default=4, help="blocks before the first look "
                                                               "(default 4)")
    p.add_argument("--max-blocks", type=int, default=12, help="blocks at most (default 12)")
    p.add_argument("--max-time", type=float, default=170.0,
                   help="no new block after this many seconds (default 170)")
    p.add_argument("--out", default="gdbench-ab.json", help="JSON file with every window")
    p.add_argument("--markdown", metavar="FILE.md", help="also write a summary for a pull request")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 1 when any case is SLOWER")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_ab)

    p = sub.add_parser("probe", help="measure the device's memory bandwidth, the roofline")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when present)")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("list", help="list the kernels and whether each runs here")
    p.set_defaults(func=cmd_list)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, what schedulers send: stops a run as Ctrl-C does, with exit status 143."""

    status = 143


def _terminate(signum, frame):
    raise Terminated("terminated")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # bad input, or a file that cannot be read or written
        print(f"gdbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"gdbench {args.command}: {stop.args[0] if stop.args else 'interrupted'}",
              file=sys.stderr)
        return getattr(stop, "status", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
