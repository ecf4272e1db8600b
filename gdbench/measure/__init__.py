"""The measuring side: clocks and sampling (``timing``), the statistics of samples (``stats``),
what the machine did meanwhile (``contention``, ``telemetry``), the roofline (``probe``), the
cases of a sweep in rounds of windows (``cases``), the sweep (``sweep``) and its worker
processes (``workers``)."""
