"""Backend selection: what loads, what runs, what falling back looks like."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnkernels


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (so import-time choices are made anew)."""
    environment = {k: v for k, v in os.environ.items() if k != "CNNKERNELS_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=300)


# Makes the named modules unimportable, as on a machine where they failed to build or install.
BLOCK_IMPORTS = """
import sys
class Blocker:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if name in self.names:
            raise ImportError(f"{name} is blocked by the test")
sys.meta_path.insert(0, Blocker(BLOCKED))
"""


def test_installed_package_has_every_backend():
    # The extension is built at install time and numba is a dependency: both must load.
    assert cnnkernels.backends() == ["cython", "numba", "numpy"]


def test_default_is_fastest_and_use_backend_restores():
    assert cnnkernels.get_backend() == cnnkernels.backends()[0]
    with cnnkernels.use_backend("numpy") as name:
        assert name == "numpy" and cnnkernels.get_backend() == "numpy"
        with cnnkernels.use_backend("numba"):
            assert cnnkernels.get_backend() == "numba"
        assert cnnkernels.get_backend() == "numpy"
    assert cnnkernels.get_backend() == cnnkernels.backends()[0]


def test_set_backend_changes_the_default():
    before = cnnkernels.get_backend()
    try:
        cnnkernels.set_backend("NumPy")
        assert cnnkernels.get_backend() == "numpy"
    finally:
        cnnkernels.set_backend(before)


def test_environment_variable_sets_the_default():
    result = run_python("import cnnkernels; print(cnnkernels.get_backend())", CNNKERNELS_BACKEND="numba")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numba"


def test_environment_variable_naming_an_unknown_backend_fails_clearly():
    result = run_python("import cnnkernels; cnnkernels.get_backend()", CNNKERNELS_BACKEND="cuda")
    assert result.returncode != 0
    assert "CNNKERNELS_BACKEND" in result.stderr and "'cuda'" in result.stderr


def test_missing_extension_falls_back_to_numba_with_one_warning():
    code = BLOCK_IMPORTS.replace("BLOCKED", repr(["cnnkernels._conv"])) + """
import json, warnings
import numpy as np
import cnnkernels
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    first = cnnkernels.get_backend()
    y = cnnkernels.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    second = cnnkernels.get_backend()
try:
    cnnkernels.set_backend("cython")
    forced = "no error"
except ValueError as exc:
    forced = str(exc)
print(json.dumps({"backends": cnnkernels.backends(), "first": first, "second": second,
                  "warnings": [str(w.message) for w in caught], "y": y.ravel().tolist(), "forced": forced}))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backends"] == ["numba", "numpy"]
    assert report["first"] == report["second"] == "numba"
    assert len(report["warnings"]) == 1
    assert "numba" in report["warnings"][0] and "cnnkernels._conv is blocked" in report["warnings"][0]
    assert report["y"] == [5.0, 7.0, 13.0, 15.0]
    assert "not available" in report["forced"] and "blocked" in report["forced"]


def test_missing_extension_and_numba_fall_back_to_numpy():
    code = BLOCK_IMPORTS.replace("BLOCKED", repr(["cnnkernels._pool", "numba"])) + """
import warnings
import cnnkernels
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print(cnnkernels.get_backend(), cnnkernels.backends(), len(caught))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "['numpy']", "1"]


def test_numba_cache_is_reused_by_a_second_process():
    code = """
import numpy as np
import cnnkernels
from cnnkernels import numba_kernels
x = np.ones((1, 2, 6, 6), np.float32)
cnnkernels.avg_pool2d(x, 2, backend="numba")
stats = numba_kernels._avg_pool2d_forward.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""
    run_python(code)  # first process: compiles (or loads) and writes the cache
    second = run_python(code)
    assert second.returncode == 0, second.stderr
    hits, misses = map(int, second.stdout.split())
    assert hits >= 1 and misses == 0


def test_results_identical_across_backends_for_simple_case():
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float64).reshape(2, 3, 5, 5)
    w = np.ones((2, 3, 2, 2))
    results = [cnnkernels.conv2d(x, w, backend=name) for name in cnnkernels.backends()]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-12)


@pytest.mark.parametrize("name", ["cython", "numba", "numpy"])
def test_every_backend_runs_every_op(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    for op in ("max", "avg", "sum"):
        y = getattr(cnnkernels, f"{op}_pool2d")(x, 2, backend=name)
        dx = getattr(cnnkernels, f"{op}_pool2d_backward")(np.ones_like(y), x, 2, backend=name)
        assert dx.shape == x.shape


def test_the_self_check_says_when_the_compiled_backend_is_missing():
    code = BLOCK_IMPORTS.replace("BLOCKED", repr(["cnnkernels._conv", "numba"])) + """
import sys
from cnnkernels.__main__ import main
sys.exit(main([]))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    first_lines = result.stdout.splitlines()[:2]
    assert "from " in first_lines[0] and "backends ['numpy']" in first_lines[0]
    assert first_lines[1].startswith("WARNING: the compiled (cython) backend is missing here")
    assert "cnnkernels._conv is blocked" in first_lines[1] and "checks the fallbacks only" in first_lines[1]
