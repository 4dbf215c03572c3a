"""The README's Python examples run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]
    if "use_backend" in code:  # the backends block lists calls; give it the names it uses
        code = "import numpy as np\nimport cnnkernels as ck\nx = np.ones((1, 1, 4, 4), np.float32)\n" \
               "w = np.ones((1, 1, 2, 2), np.float32)\n" + code.replace("    ...", "    pass")
    import cnnkernels

    backend, threads = cnnkernels.get_backend(), cnnkernels.get_num_threads()
    try:
        exec(compile(code, f"README.md block {index}", "exec"), {})
    finally:  # the examples change process-wide defaults
        cnnkernels.set_backend(backend)
        cnnkernels.set_num_threads(threads)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3
