"""The built-in kernels, one file each; ``gdbench.registry`` finds them by name."""
