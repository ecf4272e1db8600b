"""An installed-looking distribution, made in a temporary folder, that adds kernels to gdbench."""

import os
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCALED_GRADIENT = """
from gdbench.kernels.numpy_manual import NumpyManual

class {cls}(NumpyManual):
    name = "{name}"
    def backward(self):
        super().backward()
        self._grad = {factor} * self._grad
"""


def plugin_env(folder: Path, module: str, entry_points: dict[str, str], source: str) -> dict:
    """Write ``module`` with ``source`` and a dist-info naming ``entry_points`` (name -> attr).

    Returns the environment of a subprocess that sees it as installed, and gdbench.
    """
    dist = folder / f"{module}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = [f"{name} = {module}:{attr}" for name, attr in entry_points.items()]
    (dist / "entry_points.txt").write_text("[gdbench.kernels]\n" + "\n".join(lines) + "\n")
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return dict(os.environ, PYTHONPATH=f"{folder}{os.pathsep}{REPO}")


def scaled_gradient_plugin(folder: Path, module: str, name: str, factor: float, **extra) -> dict:
    """A plugin whose one kernel, ``name``, reports ``factor`` times the true gradient."""
    source = SCALED_GRADIENT.format(cls="Scaled", name=name, factor=factor)
    return plugin_env(folder, module, {name: "Scaled", **extra}, source)
