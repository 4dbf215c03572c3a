"""Every built-in peer agrees with the NumPy reference, pass by pass, on strided, padded ("same" with an even
kernel), dilated and grouped problems; each engine runs in a child process of its own (TensorFlow and JAX fix
their thread pools at start, and nothing they load should stay in this one)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent
ALL_PASSES = {"forward", "backward-data", "backward-weights"}
# passes each peer offers, and the problems it may refuse with the reason it gives
PEERS = {
    "numpy-im2col": ("numpy", ALL_PASSES),
    "scipy": ("scipy", {"forward"}),
    "torch": ("torch", ALL_PASSES),
    "torch-nhwc": ("torch", ALL_PASSES),
    "onnxruntime": ("onnxruntime", {"forward"}),
    "tensorflow": ("tensorflow", ALL_PASSES),
    "jax": ("jax", ALL_PASSES),
}
SHAPES = ("name,N,C,H,W,K,R,S,stride,padding,dilation,groups\n"
          "plain,2,5,9,8,6,3,3,1,1,1,1\n"
          "strided,2,4,11,9,8,3,2,2x1,1x0,1,1\n"
          "even-same,1,3,8,7,4,2,2,1,same,1,1\n"
          "dilated,2,3,12,12,4,3,3,1,2,2,1\n"
          "grouped,2,6,8,8,4,3,3,1,1,1,2\n")


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_matches_the_reference(peer, tmp_path):
    module, passes = PEERS[peer]
    if importlib.util.find_spec(module) is None or (peer == "onnxruntime" and importlib.util.find_spec("onnx") is None):
        pytest.skip(f"{module} is not installed")
    shapes, out = tmp_path / "shapes.csv", tmp_path / "run.json"
    shapes.write_text(SHAPES)
    done = subprocess.run([sys.executable, "-m", "bench", "--shapes", str(shapes), "--impl", peer, "--repeats", "1",
                           "--threads", "1", "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in json.loads(out.read_text())["rows"] if r["pass"] != "total"]
    for row in rows:
        assert row["status"] == "ok", row
        if "median_ms" in row:
            assert row["rel_diff"] < 2e-4, row
    timed = {(r["name"], r["pass"]) for r in rows if "median_ms" in r}
    names = {line.split(",")[0] for line in SHAPES.splitlines()[1:]}
    expected = {(n, p) for n in names for p in passes}
    if peer == "tensorflow":
        # TensorFlow's CPU backprop kernels support neither groups nor dilation
        expected -= {(n, p) for n in ("grouped", "dilated") for p in ("backward-data", "backward-weights")}
    assert timed == expected
