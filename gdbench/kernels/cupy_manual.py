"""cupy-manual: the same math as numpy-manual, on CuPy arrays on the GPU."""

from gdbench.kernels.array_manual import ArrayManualKernel


class CupyManual(ArrayManualKernel):
    name = "cupy-manual"
    backend = "cupy"
    devices = ("cuda",)
    requires = ("cupy",)

    @property
    def xp(self):
        import cupy

        return cupy

    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()
