"""gdbench: benchmarks of one linear-regression gradient-descent step, on CPU and CUDA.

Importing gdbench imports NumPy only; each kernel imports its own backend when it is made.
"""

from gdbench.core.protocol import FUSED, PHASES, Kernel
from gdbench.core.reference import check_step, loss_and_grad, make_problem
from gdbench.kernels.registry import KernelInfo, kernel_names, list_kernels, make_kernel
from gdbench.runs.sweep import run

__version__ = "0.2.2"

__all__ = [
    "FUSED",
    "PHASES",
    "Kernel",
    "KernelInfo",
    "check_step",
    "kernel_names",
    "list_kernels",
    "loss_and_grad",
    "make_kernel",
    "make_problem",
    "run",
]
