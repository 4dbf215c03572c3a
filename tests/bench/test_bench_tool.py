"""The benchmark tool as a user drives it: their own kernel (--impl), a shapes file, reports, compare.

Nothing here asserts a speed: timings only feed the checks of the tool's own logic (a kernel slowed by a
sleep 3x as long is flagged; the same kernel twice is not).
"""

import collections
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
USER = "tests.bench.user_conv"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def shapes_csv(tmp_path):
    path = tmp_path / "layers.csv"
    path.write_text("name,N,C,H,W,K,R,S,stride,padding,groups\n"
                    "small,2,4,10,10,8,3,3,1,1,1\n"
                    "strided,2,3,11,9,4,3,3,2,1,1\n"
                    "grouped,2,4,8,8,4,3,3,1,1,2\n")
    return path


def _rows(path, impl=None, pass_name=None):
    rows = json.loads(Path(path).read_text())["rows"]
    return [r for r in rows if (impl is None or r["impl"] == impl) and (pass_name is None or r["pass"] == pass_name)]


def test_user_function_ranked_and_wrong_one_flagged(tmp_path, shapes_csv, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out, md, roof = tmp_path / "run.json", tmp_path / "run.md", tmp_path / "roof.png"
    assert main(["--shapes", str(shapes_csv), "--impl", "cython", "--impl", f"{USER}:conv2d",
                 "--impl", f"{HERE / 'user_conv.py'}:wrong_conv2d", "--impl", f"{USER}:broken_conv2d",
                 "--repeats", "3", "--json", str(out), "--markdown", str(md), "--roofline", str(roof)]) == 0
    printed = capsys.readouterr().out
    mine = _rows(out, "conv2d", "forward")
    assert [r["name"] for r in mine] == ["small", "strided"] and all(r["status"] == "ok" for r in mine)
    assert all(r["rel_diff"] < 1e-5 and r["runs"] == 3 and len(r["times_ms"]) == 3 for r in mine)
    assert not _rows(out, "conv2d", "backward-data")  # a plain function is timed forward only
    grouped = next(r for r in _rows(out, "conv2d", "total") if r["name"] == "grouped")
    assert grouped["status"] == "unsupported: groups=2: the function takes no 'groups' argument"
    wrong = _rows(out, "wrong_conv2d", "total")
    assert all(r["status"].startswith("wrong: off by") for r in wrong if r["name"] != "grouped")
    assert "WRONG (off by" in printed and "**WRONG** (off by" in md.read_text()
    assert "wrong_conv2d" not in " ".join(line for line in printed.splitlines() if "cannot be ranked" in line)
    broken = _rows(out, "broken_conv2d", "forward")
    assert broken and all(r["status"] == "error: RuntimeError: out of registers" for r in broken)
    assert roof.read_bytes()[:8] == PNG
    for row in _rows(out, "cython", "total"):
        assert row["ci_low_ms"] <= row["median_ms"] <= row["ci_high_ms"] and row["intensity"] > 0
        assert row["others_cpu"] is None or 0 <= row["others_cpu"] <= 1


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:conv", "cannot import 'no_such_module_xyz'"),
    (f"{USER}:nothing", "has no attribute 'nothing'"),
    (f"{USER}:__doc__", "expected a class, an object with conv()/pool(), or a function"),
    ("missing/file.py:conv2d", "no file 'missing/file.py'"),
    ("cudnn", "unknown or unavailable implementation 'cudnn'"),
])
def test_an_impl_that_cannot_load_is_a_clear_error(spec, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--quick", "--impl", spec]) == 2
    assert message in capsys.readouterr().err


def _slowed_run(path, times, monkeypatch):
    monkeypatch.setenv("SLOWED_CONV_TIMES", str(times))
    assert main(["--shapes", str(path.parent / "compare.csv"), "--impl", f"{USER}:SlowedConv", "--impl", "numpy-im2col",
                 "--repeats", "9", "--json", str(path)]) == 0


def test_compare_flags_a_kernel_slowed_on_purpose_and_not_the_same_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "compare.csv").write_text("name,N,C,H,W,K,R,S,padding,groups\n"
                                          "a,4,16,24,24,16,3,3,1,1\nb,2,32,16,16,32,3,3,1,1\ngrouped,2,4,8,8,4,3,3,1,2\n")
    before, again, slowed = tmp_path / "before.json", tmp_path / "again.json", tmp_path / "slowed.json"
    control = ["--control", "numpy-im2col", "--threshold", "25%"]  # numpy-im2col ran in the same rounds, unchanged
    _slowed_run(before, 1, monkeypatch)
    for attempt in range(3):  # a burst of load from another process can still fake a regression: rerun up to twice
        _slowed_run(again, 1, monkeypatch)
        capsys.readouterr()
        if main(["compare", str(before), str(again), *control, "--fail-on-regression", "25%"]) == 0:
            break
    else:
        pytest.fail("the same code was flagged slower in 3 runs of 3: " + capsys.readouterr().out)
    same = capsys.readouterr().out
    assert "SLOWER" not in same and "2 rows: 0 significantly slower" in same and "relative to numpy-im2col" in same
    for attempt in range(3):  # a burst of load can also widen an interval past a real slowdown: rerun up to twice
        _slowed_run(slowed, 3, monkeypatch)
        capsys.readouterr()
        status = main(["compare", str(before), str(slowed), *control, "--fail-on-regression", "25%"])
        captured = capsys.readouterr()
        if captured.out.count("SLOWER") == 2:
            break
    # the two plain problems; SlowedConv refuses the grouped one
    assert status == 1
    assert captured.out.count("SLOWER") == 2 and "2 significant regression(s) beyond 25%" in captured.err
    assert main(["compare", str(slowed), str(before), *control]) == 0
    assert "0 significantly slower, 2 significantly faster" in capsys.readouterr().out
    assert main(["compare", str(before), str(slowed), "--control", "torch-xyz"]) == 2
    assert "--control torch-xyz: not in both runs" in capsys.readouterr().err


def test_compare_warns_when_everything_moved_together(tmp_path, capsys):
    def run(scale):
        rows = [{"problem": "p", "name": "p", "impl": impl, "threads": 1, "pass": "forward", "status": "ok",
                 "times_ms": [scale * (1 + 0.01 * i) for i in range(9)]} for impl in ("ours", "theirs")]
        rows += [{"problem": "p", "name": "p", "impl": impl, "threads": 1, "pass": "total", "status": "ok",
                  "passes": ["forward"]} for impl in ("ours", "theirs")]
        return {"machine": {"date": "d", "cpu": "c", "cnnkernels": "0"}, "sgemm_gflops": {}, "rows": rows}

    for name, scale in (("a.json", 1.0), ("b.json", 1.5)):
        (tmp_path / name).write_text(json.dumps(run(scale)))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("SLOWER") == 2 and "every implementation moved the same way on 1 problem(s) (p at 1" in out
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--control", "theirs"]) == 0
    out = capsys.readouterr().out
    assert "SLOWER" not in out and "1 rows: 0 significantly slower" in out


def test_compare_and_report_refuse_foreign_files(tmp_path, capsys):
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"benchmarks": []}))
    assert main(["compare", str(foreign), str(foreign)]) == 2
    assert "is not a cnnkernels-bench --json file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "cannot read benchmark run" in capsys.readouterr().err


def test_reports_markdown_and_html(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, page = tmp_path / "run.json", tmp_path / "run.html"
    assert main(["--quick", "--impl", "cython", "--impl", "numpy-im2col", "--json", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    markdown = capsys.readouterr().out
    assert "| problem | impl |" in markdown and "| q-conv" in markdown and "numpy-im2col" in markdown
    assert main(["report", str(out), "--html", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") == 2 and "<table>" in text


def test_the_console_script_is_installed_and_runs():
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "cnnkernels-bench"]
    assert script.value == "cnnkernels_bench.cli:main"
    path = Path(sys.executable).parent / "cnnkernels-bench"
    listed = subprocess.run([str(path), "--list", "--impl", "cython", "--impl", "numpy-im2col"], capture_output=True,
                            text=True, cwd="/", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["cython", "numpy-im2col"]
    import cnnkernels_bench

    assert Path(cnnkernels_bench.__file__).parent.name == "bench"  # the same files as `python -m bench`


def test_load_meter_sees_a_busy_neighbour():
    import time

    from bench.busy import Neighbours
    from bench.stats import LoadMeter

    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc here")
    with Neighbours(1):
        time.sleep(0.3)  # let it start
        with LoadMeter() as load:
            time.sleep(1.0)
    assert load.others_cpu > 0.2 / os.cpu_count() * 2, load.others_cpu


def test_bootstrap_interval_brackets_the_median():
    import numpy as np

    from bench.stats import ratio_interval, total_interval

    rng = np.random.default_rng(3)
    times = list(1.0 + rng.exponential(0.05, 15))
    low, high = total_interval([times])
    assert low <= float(np.median(times)) <= high
    low, high = ratio_interval([times], [[t * 2 for t in times]])
    assert 1.6 < low <= 2.0 <= high < 2.4


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_balanced_orders_put_every_call_after_every_other_equally_often(n):
    from bench.core import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    follows = collections.Counter((a, b) for order in orders for a, b in zip(order, order[1:]))
    assert set(follows) == {(a, b) for a in range(n) for b in range(n) if a != b}
    assert len(set(follows.values())) <= 1


def test_interleaved_rounds_vary_each_calls_predecessor():
    from bench.core import interleaved

    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abcd"}
    times = interleaved(calls, 4, budget_s=None)
    assert order == list("abdc" "bcad" "cdba" "dacb")
    assert {name: len(values) for name, values in times.items()} == {"a": 4, "b": 4, "c": 4, "d": 4}


def test_pytest_benchmark_takes_impl_too():
    pytest.importorskip("pytest_benchmark")
    done = subprocess.run([sys.executable, "-m", "pytest", "bench/", "--benchmark-only", "--bench-set", "quick",
                           "--impl", f"{USER}:conv2d", "--impl", "cython", "-q", "-p", "no:cacheprovider",
                           "--benchmark-disable-gc"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # conv2d: the forward of q-conv (q-strided's "same" is asymmetric); cython: 3 + 3 conv passes, 2 pooling ones
    assert "9 passed, 7 skipped" in done.stdout and "asymmetric padding" in done.stdout, done.stdout[-1500:]


def test_an_installed_package_offers_an_impl_by_entry_point(monkeypatch, capsys):
    from bench import plugins

    point = importlib.metadata.EntryPoint(name="course-conv", value=f"{USER}:conv2d", group=plugins.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [point] if kw.get("group") == plugins.ENTRY_POINT_GROUP else real(**kw))
    monkeypatch.chdir(ROOT)
    (impl,) = plugins.resolve(["course-conv"])
    assert isinstance(impl, plugins.FunctionImpl) and impl.name == "conv2d"
    assert "course-conv" in plugins.names()


def test_versus_names_the_layers_it_does_not_know(capsys):
    from bench import versus

    with pytest.raises(SystemExit):
        versus.main(["--layers", "tut-conv1,resnet-9x9"])
    assert "unknown layers ['resnet-9x9']" in capsys.readouterr().err


def test_versus_runs_only_the_layers_named():
    pytest.importorskip("torch")
    from bench import versus

    rows = list(versus.conv_rows(1, 1, ["tut-conv1"]))
    assert [row["layer"].split()[0] for row in rows] == ["tut-conv1"]
    assert rows[0]["forward_ratio"] > 0 and rows[0]["algorithm"].startswith("direct/")


def test_versus_training_row_step_by_step_and_in_runs():
    pytest.importorskip("torch")
    from bench import versus

    row = versus.training_row(1, 1, 20)
    assert row["steps_per_run"] == versus.STEPS_PER_RUN
    for rates in (row["images_per_s"], row["images_per_s_in_runs"]):
        assert set(rates) == {"convnet", "torch", "torch-nhwc"} and min(rates.values()) > 0
    assert row["ratio_in_runs"] == pytest.approx(
        row["images_per_s_in_runs"]["convnet"] / max(row["images_per_s_in_runs"]["torch"],
                                                     row["images_per_s_in_runs"]["torch-nhwc"]))
