"""The versions of gdbench's results files, and how a file of an older one is read.

Every run and converge file carries ``schema_version``. A reader brings an older file up to the
current version, one step at a time, so that what reads results (``compare``, ``report``,
``plot``) sees one shape only; a file of a newer version than this gdbench knows is refused
with one line, never misread.

Change log:

- **1** (gdbench 0.1): the sweep, each case's raw samples and windows, batches, the probe and
  the rooflines of each round, contention and NVML readings; converge files (``"kind":
  "converge"``). Files of the first 0.1 releases hold one window and a probe with a cache
  level; they read as they are.
- **2**: every window after a case's first is measured on a new instance prepared on fresh
  buffers (``settings.fresh_layout``: a version 1 file measured every window on one instance,
  and reads as ``fresh_layout: false``); a data-parallel run holds the plain single-process
  step of each kernel (``ranks`` 0) as its scaling baseline, and says whether it measured weak
  scaling (``settings.weak_scaling``; a version 1 run did whenever it had more than one rank).
- **3**: the run records the source that ran (``environment.source``: the commit, the files
  that differed from it and a hash of the differences, a hash of the package's files) and
  where its energy was read from, or why it was not (``environment.energy``); each case holds
  its energy per window (``energy``, where a counter is readable) and NVML's readings inside
  each window (``telemetry.windows[].during``); the rooflines of each round are the best
  *reading* method's, and the CPU's methods include two streams read side by side, as a step
  reads x and y (a copy reads and writes: ``probe.copy_bandwidth``, for reference only); a
  round's roofline is the higher of the probe before and after the size's windows, and a case
  measured again after the rounds holds the rooflines measured around its own windows
  (``rooflines`` on the case). A
  version 2 file reads as it is; on CUDA its rooflines were the best of all methods, a copy
  included.
- **4**: a case names its stalled windows (``stalled_windows``, and ``stalled`` in each
  summary: windows 3 times slower than the fastest, left out of its median and interval), and
  a case of K steps per call says how they ran (``many_steps``: one launch, cooperative or
  not, or a launch a step and why). A version 3 file reads as it is: its summaries are made
  again from its samples, stalled windows aside. Since gdbench 0.2.1 the settings hold
  ``max_windows``, the most windows a case could get (a case's own count is its
  ``windows``); a file without it measured every case in ``windows`` windows.
  Since gdbench 0.2.2 the cases of a data-parallel run hold the readings of their ranks'
  windows, one joined reading a window (docs/scale-out.md): ``contention`` (with ``ranks``),
  ``telemetry`` (with the ``rank`` it is of) and ``energy`` (with the ``devices`` it adds up);
  a file without them read nothing on its ranks.

The files of ``gdbench ab`` (``"tool": "gdbench-ab"``) have versions of their own
(``AB_VERSION``):

- **1**: blocks of fresh worker processes, rounds, each case's windows, pairs, verdicts and
  variance components; a case that left the session has ``status`` wrong or error and a
  ``message`` that begins with its side.
- **2**: a case that left the session names the side it failed on (``side``) and its outcome
  (``status``: wrong, error, oom or unavailable). A version 1 file reads with the side taken
  from its message.

The noise files (``gdbench-noise``, ``gdbench-noise-paired``) carry ``schema_version`` 1 from
the version of gdbench that wrote it first; a file without one is of version 1.

A file of any kind whose version is newer than this gdbench knows is refused with one line.
"""

from __future__ import annotations

from gdbench.records.results import SCHEMA_VERSION as VERSION

AB_VERSION = 2
NOISE_VERSION = 1


def _from_1(d: dict) -> dict:
    settings = d.setdefault("settings", {})
    settings.setdefault("fresh_layout", False)
    if settings.get("world_sizes"):
        settings.setdefault("weak_scaling", True)
    return d


def _from_2(d: dict) -> dict:
    return d  # nothing to fill in: every field version 3 added is optional


def _from_3(d: dict) -> dict:
    return d  # the stalled windows are found from the samples; many_steps is optional


UPGRADES = {1: _from_1, 2: _from_2, 3: _from_3}  # version -> the step to the next one


def upgrade(d: dict, path) -> dict:
    """``d`` (a results file's JSON) in the current version; ValueError for one that is not
    a version this gdbench reads."""
    version = d.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: schema version {version!r} is not one gdbench writes")
    if version > VERSION:
        raise ValueError(f"{path}: schema version {version} is newer than this gdbench's "
                         f"({VERSION}); upgrade gdbench to read it")
    while version < VERSION:
        d = UPGRADES[version](d)
        version += 1
    d["schema_version"] = VERSION
    return d


def _ab_from_1(d: dict) -> dict:
    for case in d.get("cases", []):
        message = case.get("message") or ""
        side = message.split(" ", 1)[0]
        case.setdefault("side", side if case.get("status") != "ok" and side in ("base", "new")
                        else None)
    return d


AB_UPGRADES = {1: _ab_from_1}


def upgrade_ab(d: dict, path) -> dict:
    """An ab file's JSON in the current ab version; ValueError for one gdbench cannot read."""
    version = d.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: ab schema version {version!r} is not one gdbench writes")
    if version > AB_VERSION:
        raise ValueError(f"{path}: ab schema version {version} is newer than this gdbench's "
                         f"({AB_VERSION}); upgrade gdbench to read it")
    while version < AB_VERSION:
        d = AB_UPGRADES[version](d)
        version += 1
    d["schema_version"] = AB_VERSION
    return d


def check_noise_version(d: dict, path) -> dict:
    """A noise file's JSON, once its version is one this gdbench reads (none: version 1)."""
    version = d.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: noise schema version {version!r} is not one gdbench writes")
    if version > NOISE_VERSION:
        raise ValueError(f"{path}: noise schema version {version} is newer than this "
                         f"gdbench's ({NOISE_VERSION}); upgrade gdbench to read it")
    return d
