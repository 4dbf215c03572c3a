"""`python -m bench --quick` runs, measures every pass and agrees with the reference (no timing asserted)."""

import json

import pytest

from bench.__main__ import main


def test_quick_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--threads", "1,2", "--impl", "cython", "--impl", "numba", "--impl", "numpy-ref",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["numpy"] and set(report["sgemm_gflops"]) == {"1", "2"}
    rows = report["rows"]
    impls = {r["impl"] for r in rows}
    assert impls == {"cython", "numba", "numpy-ref"}
    conv_passes = {r["pass"] for r in rows if r["name"] == "q-conv"}
    assert conv_passes == {"forward", "backward-data", "backward-weights", "total"}
    for row in rows:
        assert row["runs"] >= 3 and row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["max_abs_diff"] < 1e-3, row
    assert all(r["gflops"] > 0 for r in rows if r["name"] == "q-conv")
    printed = capsys.readouterr().out
    assert "x torch" in printed and "q-conv" in printed
    from bench.report import markdown

    tables = markdown(report)
    assert "### 1 thread(s)" in tables and "| q-conv" in tables and "images/s" in tables
    training = {(r["impl"], r["threads"]) for r in report["training"]}
    assert {("convnet", 1), ("convnet", 2)} <= training
    assert all(r["images_per_s"] > 0 for r in report["training"])


def test_unknown_implementation_is_a_clear_error(capsys):
    assert main(["--quick", "--impl", "cudnn"]) == 2
    assert "cudnn" in capsys.readouterr().err


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plot.png"
    assert main(["--quick", "--impl", "cython", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_ladder_runs(capsys, monkeypatch):
    from bench import split

    monkeypatch.setattr(split, "CONVS", split.CONVS[:1])
    monkeypatch.setattr(split, "POOLS", split.POOLS[:1])
    assert split.main(["--rounds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2x8x8x8->8" in printed and "4x8x8x8" in printed


def test_busy_neighbours_start_and_stop():
    import os

    from bench.busy import Neighbours

    with Neighbours(2) as neighbours:
        assert all(p.is_alive() for p in neighbours.processes)
        pids = [p.pid for p in neighbours.processes]
    assert not any(p.is_alive() for p in neighbours.processes)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_busy_table_compares_two_threads_with_one():
    from bench.busy import format_rows

    rows = [{"row": "layer", "impl": impl, "threads": n, "idle_ms": 1.0, "busy_ms": busy, "slowdown": busy}
            for impl, n, busy in (("ours", 1, 2.0), ("ours", 2, 1.5), ("torch", 1, 2.0), ("torch", 2, 8.0))]
    table = format_rows(rows, 2)
    assert "ours 0.75   torch 4.00" in table


def test_accuracy_rows_name_each_algorithm_with_its_error():
    import cnnkernels
    from bench import accuracy
    from bench.shapes import Conv

    if "cython" not in cnnkernels.backends():
        pytest.skip("the algorithms are the cython backend's")
    problem = Conv("small", 2, 16, 9, 9, 16, 3, 3, stride=1, padding=1)
    found = {row["algorithm"]: row for row in accuracy.rows([problem])}
    assert set(found) == {"winograd", "winograd2x2", "direct", "im2row", "im2col"}  # gemm needs 1x1
    assert found["winograd2x2"]["y"] < 2e-6 and found["winograd2x2"]["passes"] == ("winograd2x2", "im2row", "im2col")
    assert 0 < found["winograd"]["y"] < 1e-5 and found["winograd"]["dw"] < 1e-5  # the tests' Winograd bound
    assert all(row["y"] < 1e-6 for name, row in found.items() if not name.startswith("winograd"))
    assert found["im2row"]["passes"] == ("im2row", "im2row", "im2col")
    assert found["direct"]["passes"] == ("direct", "im2row", "direct") and found["direct"]["dw"] < 1e-6
