"""What runs a measurement from start to end: the sweep, its workers, converge, train, ab."""
