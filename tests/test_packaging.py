"""Importing gdbench stays light, and other projects add kernels through entry points."""

import subprocess
import sys
import textwrap

import gdbench
from tests.plugins import scaled_gradient_plugin


def python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=env or None, check=True).stdout


def test_import_pulls_in_no_backend():
    out = python("""
        import sys, gdbench
        import gdbench.kernels.registry, gdbench.core.reference, gdbench.cli
        gdbench.list_kernels("cpu")
        print([m for m in ("torch", "cupy", "triton", "numba", "jax", "matplotlib", "pynvml")
               if m in sys.modules])
    """)
    # list_kernels('cpu') asks only whether modules are installed, without importing them.
    assert out.strip() == "[]"


def test_entry_point_kernel(tmp_path, monkeypatch):
    """A fake installed distribution (its dist-info on the path, as pip leaves it) whose entry
    point adds a kernel to gdbench."""
    from gdbench.kernels import registry

    scaled_gradient_plugin(tmp_path, "extra_kernels", "double-numpy", 2, broken="Nope")
    monkeypatch.syspath_prepend(str(tmp_path))
    infos = {k.name: k for k in gdbench.list_kernels()}
    kernel = gdbench.make_kernel("double-numpy")
    x, y = gdbench.make_problem(100)
    names, builtin = gdbench.kernel_names(), list(registry.BUILTIN)
    plugins = names[len(builtin):]  # after the built-in kernels, sorted
    assert names[:len(builtin)] == builtin
    assert {"broken", "double-numpy"} <= set(plugins) and plugins == sorted(plugins)
    assert infos["double-numpy"].source == "plugin" and infos["double-numpy"].available_on("cpu")
    assert "failed to load" in infos["broken"].reason
    # the plugin's doubled gradient is caught by the reference
    assert "gradient" in gdbench.check_step(kernel, x, y)


def test_every_builtin_is_listed_first_under_its_own_name():
    from gdbench.kernels import registry

    infos = gdbench.list_kernels()
    assert [k.name for k in infos[:len(registry.BUILTIN)]] == list(registry.BUILTIN)
    for name in registry.BUILTIN:
        assert registry.kernel_class(name).name == name


INCOMPLETE = """
class NoReason:
    name = "no-reason"
    backend = "numpy"
    devices = ("cpu",)
    dtypes = ("float32",)
    phases = ("step",)
    passes = 1.0
"""


def test_a_plugin_that_lacks_part_of_the_contract_is_listed_as_unavailable(
        tmp_path, monkeypatch, gdbench_cli):
    """Installed beside the built-ins (its dist-info on the path, as pip leaves it): listed
    with what it lacks, left out of "all", and a one-line error when named."""
    from gdbench.kernels import registry
    from gdbench.runs.sweep import plan
    from tests.plugins import plugin_env

    plugin_env(tmp_path, "incomplete_kernels", {"no-reason": "NoReason"}, INCOMPLETE)
    monkeypatch.syspath_prepend(str(tmp_path))
    listed = gdbench_cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "no-reason" in listed.stdout and "lacks" in listed.stdout
    everything = {s.kernel for s in plan("cpu", "all", [100], 1, "float32")}
    assert "no-reason" not in everything
    assert everything == {k.name for k in registry.list_kernels("cpu")
                          if k.available_on("cpu") and "float32" in k.dtypes}
    named = gdbench_cli("run", "--kernels", "no-reason", "--out", tmp_path / "s.json")
    assert named.returncode == 2
    assert "lacks unavailable_reason, prepare, step" in named.stderr
    assert len(named.stderr.strip().splitlines()) == 1
