"""The number formats a step runs in: storage, accumulation, unit roundoff and size.

A half-precision kernel stores x, y and w in 16 bits and accumulates its sums in float32, as
mixed-precision training does. Half-precision runs share the float32 problem of their size:
each kernel rounds the float32 data to its format in ``prepare``, so every dtype of a run
steps on the same samples, and the float64 reference of those samples judges them all.
"""

from __future__ import annotations

DTYPES = ("float32", "float64", "bfloat16", "float16")
HALF = ("bfloat16", "float16")
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
# Unit roundoff u: half the distance from 1 to the next number of the format.
UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24,
                 "float64": 2.0**-53}
SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}


# The short names the tables print are accepted wherever a dtype is asked for.
ALIASES = {short: name for name, short in SHORT.items()}


def check_dtype(dtype: str) -> str:
    """The dtype's full name, for a full or a short name (``bf16``); ValueError otherwise."""
    dtype = ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from: {', '.join(DTYPES)} (or "
                         f"{', '.join(ALIASES)})")
    return dtype


def parse_dtypes(given) -> list[str]:
    """``"float32,bfloat16"`` or a sequence of such strings: the dtypes of a run, each once,
    in the order given; the one place a run's dtypes are normalised."""
    parts = given.split(",") if isinstance(given, str) else [
        t for item in given for t in str(item).split(",")]
    dtypes = [check_dtype(t.strip()) for t in parts if t.strip()]
    if not dtypes:
        raise ValueError("no dtype given")
    return list(dict.fromkeys(dtypes))


def accumulator(dtype: str) -> str:
    """The format sums are kept in: float32 for half precision, else the storage format."""
    return "float32" if dtype in HALF else dtype


def host_dtype(dtype: str) -> str:
    """The NumPy dtype that carries ``dtype``'s data on the host; NumPy has no bfloat16."""
    return "float32" if dtype == "bfloat16" else dtype


def problem_dtype(dtype: str) -> str:
    """The dtype of the random problem a case of ``dtype`` steps on."""
    return "float64" if dtype == "float64" else "float32"
