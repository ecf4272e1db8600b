"""numpy-manual: the tutorial's NumPy step with the analytic gradient, on the CPU."""

import numpy as np

from gdbench.kernels.array_manual import ArrayManualKernel


class NumpyManual(ArrayManualKernel):
    name = "numpy-manual"
    backend = "numpy"
    devices = ("cpu",)
    xp = np

    def synchronize(self):
        """NumPy returns only when its work is done."""
