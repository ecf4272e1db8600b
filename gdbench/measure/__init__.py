"""The measuring side: clocks and sampling (``clocks``, ``timing``), the cases of a sweep in
rounds of windows (``cases``), the threads a case runs on (``threads``), the roofline
(``roofline``), and the environment and the source that ran (``environment``, ``source``).
What is read of a case besides its times (memory, contention, telemetry, energy) is
``gdbench.axes``'; the sweep and its worker processes are the running side's
(``gdbench.runs``); the statistics of samples are the records' (``gdbench.records.stats``)."""
