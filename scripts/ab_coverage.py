"""Write ``coverage.json`` of a ``gdbench noise --paired`` study folder again from its files:
its A/A sessions resampled with ratios put in, and how the real ones did
(``gdbench.analysis.coverage.write_coverage``). ``python scripts/ab_coverage.py DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gdbench.analysis.coverage import write_coverage  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/ab_coverage.py DIR", file=sys.stderr)
        return 2
    result = write_coverage(Path(argv[0]))
    print(f"{argv[0]}/coverage.json: {result['simulated']['comparisons']} comparisons, "
          f"{result['simulated']['trials']} resampled sessions each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
