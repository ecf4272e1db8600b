"""gdbench ab: two sides measured in one interleaved session, and the paired verdict."""
