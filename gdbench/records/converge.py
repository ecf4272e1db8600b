"""Records of ``gdbench converge``: each descent, and the run with its optima and direct solves."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gdbench.records.results import SCHEMA_VERSION, CaseSpec


@dataclass(frozen=True)
class Descent:
    """One kernel's gradient descent to the optimum."""

    kernel: str
    device: str
    dtype: str
    n_samples: int
    n_features: int
    rule: str  # tutorial, curvature, or the rate as given
    lr: float
    status: str  # converged, stalled, max-steps, max-time, diverged, wrong, error
    message: str = ""
    steps: int = 0
    seconds: float = float("nan")  # from the first step to the reading that ended the descent
    loss: float = float("nan")  # the last loss read
    excess: float = float("nan")  # (loss - optimum's) / optimum's
    weight_error: float = float("nan")  # |w - w*| / |w*| of the final weights
    warmup_s: float = float("nan")  # the untimed first step, compilation included
    trace: list = field(default_factory=list)  # [step, seconds, loss] readings

    @property
    def name(self) -> str:

        return CaseSpec(kernel=self.kernel, device=self.device, dtype=self.dtype,
                        n_samples=self.n_samples).name

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> Descent:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class ConvergeResult:
    """A ``gdbench converge`` run: where, with which settings, the optima, solves and descents."""

    environment: dict
    settings: dict
    optima: list = field(default_factory=list)  # Optimum.to_dict() of each size and dtype
    direct: list = field(default_factory=list)  # direct_solve() of each size and dtype
    descents: list = field(default_factory=list)
    complete: bool = False

    def to_dict(self) -> dict:

        return {"schema_version": SCHEMA_VERSION, "tool": "gdbench", "kind": "converge",
                "complete": self.complete, "environment": self.environment,
                "settings": self.settings, "optima": self.optima,
                "direct": self.direct, "descents": [d.to_dict() for d in self.descents]}

    @classmethod
    def from_dict(cls, d: dict) -> ConvergeResult:
        return cls(d["environment"], d["settings"], d.get("optima", []), d.get("direct", []),
                   [Descent.from_dict(x) for x in d["descents"]], bool(d.get("complete")))
