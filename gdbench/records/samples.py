"""Timing samples of one case, per phase and window, and the batches of back-to-back steps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gdbench.records.stats import Summary


@dataclass(frozen=True, eq=False)
class Samples:
    """Per-phase timing samples in seconds: ``device`` (wall time on the CPU), ``host`` on CUDA."""

    phases: tuple[str, ...]
    device: np.ndarray  # (samples, phases)
    host: np.ndarray | None = None  # (samples, phases); None where host and device are one clock
    batch: np.ndarray | None = None  # time per step of each batch of back-to-back steps
    batch_size: int = 0  # steps per batch
    batch_host: np.ndarray | None = None  # host (launch) time per step of each batch, on CUDA
    window: np.ndarray | None = None  # the window each latency sample was taken in
    batch_window: np.ndarray | None = None  # the window of each batch
    # summaries made so far: a report or a table asks for the same one many times, and each
    # is a bootstrap over the samples, which are not changed once recorded
    _summaries: dict = field(default_factory=dict, init=False, repr=False)

    def step(self, clock: str = "device") -> np.ndarray:
        """Whole-step samples: the sum of the phases of each sample."""
        return getattr(self, clock).sum(axis=1)

    def phase(self, name: str, clock: str = "device") -> np.ndarray:
        if name == "step":
            return self.step(clock)
        return getattr(self, clock)[:, self.phases.index(name)]

    def summary(self, name: str = "step", clock: str = "device") -> Summary:
        key = (name, clock)
        if key not in self._summaries:
            self._summaries[key] = Summary.of(self.phase(name, clock), self.window)
        return self._summaries[key]

    def throughput(self, clock: str = "device") -> Summary | None:
        """Time per step in batches of back-to-back steps; None when no batch was measured."""
        values = self.batch if clock == "device" else self.batch_host
        if values is None or len(values) == 0:
            return None
        key = ("throughput", clock)
        if key not in self._summaries:
            self._summaries[key] = Summary.of(values, self.batch_window)
        return self._summaries[key]

    def per_step(self, k: int) -> Samples:
        """The same samples of calls of ``k`` steps each, as times per step."""
        def scaled(a):
            return None if a is None else a / k

        return Samples(self.phases, self.device / k, scaled(self.host), scaled(self.batch),
                       self.batch_size, scaled(self.batch_host), self.window, self.batch_window)

    @property
    def windows(self) -> int:
        return 1 if self.window is None else len(np.unique(self.window))

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        """One window per part, in order: the samples of ``parts[k]`` make window k."""
        def stack(field, rows=False):
            arrays = [getattr(p, field) for p in parts]
            if any(a is None for a in arrays):
                return None
            return np.concatenate(arrays) if not rows else np.vstack(arrays)

        first = parts[0]
        window = np.concatenate([np.full(len(p.device), k) for k, p in enumerate(parts)])
        batch_window = None
        if all(p.batch is not None for p in parts):
            batch_window = np.concatenate([np.full(len(p.batch), k) for k, p in enumerate(parts)])
        return cls(first.phases, stack("device", True), stack("host", True), stack("batch"),
                   first.batch_size, stack("batch_host"), window, batch_window)

    @classmethod
    def join(cls, parts: list[Samples]) -> Samples:
        """Samples of several runs of the same case, each keeping its windows, one after another."""
        pieces = []
        for p in parts:
            window = p.window if p.window is not None else np.zeros(len(p.device), int)
            batch_window = p.batch_window
            if p.batch is not None and batch_window is None:
                batch_window = np.zeros(len(p.batch), int)
            ids = np.unique(window)
            for k in ids:
                host = None if p.host is None else p.host[window == k]
                batch = batch_host = None
                if p.batch is not None:
                    batch = p.batch[batch_window == k]
                    batch_host = None if p.batch_host is None else p.batch_host[batch_window == k]
                pieces.append(cls(p.phases, p.device[window == k], host, batch, p.batch_size,
                                  batch_host))
        return cls.concat(pieces)
