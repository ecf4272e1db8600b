"""The built-in kernels, one file each; ``gdbench.kernels.registry`` finds them by name."""
