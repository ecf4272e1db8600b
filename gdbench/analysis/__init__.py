"""The reading-and-reporting side: terminal tables (``tables``), comparisons of two runs
(``compare``), the noise of a machine (``noise``), findings (``findings``), plots (``plot``)
and Markdown reports (``report``)."""
