"""Plain records of what was measured: specs, samples, statistics, readings, results. No I/O."""
