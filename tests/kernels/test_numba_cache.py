"""The Numba kernels cache their compiled code per user, never inside the installed package (which an
uninstall would leave behind as a namespace package hiding the next install)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

PROBE = """
import json, os, numba, cnnkernels
from cnnkernels import numba_kernels
paths = [v._cache.cache_path for v in vars(numba_kernels).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
print(json.dumps({"package": os.path.dirname(cnnkernels.__file__), "paths": paths}))
"""


def _cache_paths(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environment.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), **env)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_kernels_cache_in_the_user_cache_folder(tmp_path):
    found = _cache_paths(tmp_path)
    assert len(found["paths"]) >= 10
    for path in found["paths"]:
        assert Path(path).is_relative_to(tmp_path / "xdg" / "cnnkernels" / "numba"), path
        assert not Path(path).is_relative_to(found["package"])


def test_numba_cache_dir_still_wins(tmp_path):
    found = _cache_paths(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    assert all(Path(path).is_relative_to(tmp_path / "mine") for path in found["paths"])
