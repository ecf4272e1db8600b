"""The step's contract and its judge: the kernel protocol, dtypes, devices, the float64 reference;
and how sizes are written (``units``)."""
