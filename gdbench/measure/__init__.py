"""The measuring side: clocks and sampling (``clocks``, ``timing``), the cases of a sweep in
rounds of windows (``cases``), what the machine did meanwhile (``contention``, ``telemetry``,
``energy``, ``threads``, ``memory``), the roofline (``roofline``), the environment and the source
that ran (``environment``, ``source``), and the hooks read around a window (``hooks``). The
sweep and its worker processes are the running side's (``gdbench.runs``); the statistics of
samples are the records' (``gdbench.records.stats``)."""
