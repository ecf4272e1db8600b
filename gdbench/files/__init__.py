"""Files of results: where they may go, atomic writes, partial and numbered files, readers."""
