"""The roofline a probe measured: bandwidth by method, against the working-set size."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# Methods that read and write (bytes read plus written): shown for reference, never a roofline,
# since a step only reads.
COPY_METHODS = frozenset({"torch-copy"})


def read_rate(methods: dict) -> float:
    """The best of ``methods`` (name -> bytes/s) that only read."""
    return max(v for k, v in methods.items() if k not in COPY_METHODS)


@dataclass(frozen=True)
class Probe:
    device: str
    nbytes: int  # size of the array streamed from memory
    methods: dict  # method name -> bytes/s from memory
    cache_bytes: int = 0  # last-level cache (L2 on CUDA) the OS or driver reports; 0 if none
    cache_methods: dict = field(default_factory=dict)  # results files of gdbench 0.1.0
    cache_nbytes: int = 0
    curve: dict = field(default_factory=dict)  # working-set bytes -> best bytes/s
    levels: dict = field(default_factory=dict)  # cache name -> bytes, as reported

    @property
    def bandwidth(self) -> float:
        """Memory roofline in bytes/s: the best reading method's."""
        return read_rate(self.methods)

    @property
    def best_method(self) -> str:
        return max((k for k in self.methods if k not in COPY_METHODS), key=self.methods.get)

    @property
    def copy_bandwidth(self) -> float | None:
        """The best copy's bytes read plus written per second, for reference; None if none."""
        copies = [v for k, v in self.methods.items() if k in COPY_METHODS]
        return max(copies) if copies else None

    @property
    def cache_bandwidth(self) -> float | None:
        return max(self.cache_methods.values()) if self.cache_methods else None

    def roofline(self, nbytes: int) -> float:
        """The roofline for a step reading ``nbytes``, from the curve where there is one.

        Between two measured sizes the curve is interpolated on log-log axes; past its ends it
        keeps its end values. Never below the memory level: a figure under it says the method,
        not the level, was slow.
        """
        if self.curve:
            sizes = sorted(self.curve)
            logs = np.log([self.curve[s] for s in sizes])
            value = float(np.exp(np.interp(math.log(nbytes), np.log(sizes), logs)))
            return max(value, self.bandwidth)
        if self.cache_methods and nbytes <= self.cache_bytes:
            return max(self.cache_bandwidth, self.bandwidth)
        return self.bandwidth

    def to_dict(self) -> dict:
        d = {**asdict(self), "bandwidth": self.bandwidth, "best_method": self.best_method,
             "cache_bandwidth": self.cache_bandwidth,
             "copy_bandwidth": self.copy_bandwidth}
        d["curve"] = {str(k): v for k, v in self.curve.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Probe:
        return cls(d["device"], int(d["nbytes"]), dict(d["methods"]),
                   int(d.get("cache_bytes", 0)), dict(d.get("cache_methods", {})),
                   int(d.get("cache_nbytes", 0)),
                   {int(k): float(v) for k, v in d.get("curve", {}).items()},
                   dict(d.get("levels", {})))
