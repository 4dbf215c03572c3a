"""--shapes files: CSV, JSON and DeepBench's conv_problems.h give the problems they say; bad rows a clear error."""

import json

import pytest

from bench.shapefiles import ShapeFileError, load
from bench.shapes import Conv

DEEPBENCH = """
// Vector saves w, h, c, n, k, filter_w(s), filter_h(r), pad_w, pad_h, wstride, hstride
std::vector<std::tuple<unsigned int, unsigned int, unsigned int, unsigned int,
                       unsigned int, unsigned int, unsigned int,
                       unsigned int, unsigned int, unsigned int, unsigned int>> training_set = {
    std::make_tuple(700, 161, 1, 4, 32, 20, 5, 0, 0, 2, 2),
    std::make_tuple(54, 54, 64, 8, 64, 3, 3, 1, 1, 1, 1),
};
std::vector<std::tuple<unsigned int, unsigned int, unsigned int, unsigned int,
                       unsigned int, unsigned int, unsigned int,
                       unsigned int, unsigned int, unsigned int, unsigned int>> inference_server_set = {
    std::make_tuple(341, 79, 32, 1, 32, 10, 5, 0, 0, 2, 2),
};
"""


def test_csv_with_every_column(tmp_path):
    path = tmp_path / "layers.csv"
    path.write_text("name,N,C,H,W,K,R,S,stride,padding,dilation,groups\n"
                    "# a comment line\n"
                    "a,2,8,12,10,16,3,3,2x1,same,1,2\n"
                    ",1,3,9,9,4,5,5,1,1x2,2,1\n")
    shape_set = load(str(path))
    first, second = shape_set.problems
    assert first == Conv("a", 2, 8, 12, 10, 16, 3, 3, (2, 1), "same", 1, 2)
    assert second == Conv("row-2", 1, 3, 9, 9, 4, 5, 5, 1, (1, 2), 2, 1)
    assert second.out_hw() == (3, 5) and first.weight_shape == (16, 4, 3, 3)


def test_csv_with_only_the_required_columns(tmp_path):
    path = tmp_path / "min.csv"
    path.write_text("N,C,H,W,K,R,S\n4,3,20,20,32,3,3\n")
    (problem,) = load(str(path)).problems
    assert (problem.stride, problem.padding, problem.dilation, problem.groups) == (1, 0, 1, 1)


def test_json_list_and_object(tmp_path):
    rows = [{"N": 2, "C": 4, "H": 8, "W": 8, "K": 4, "R": 3, "S": 3, "stride": [2, 2], "padding": "valid",
             "name": "j"}]
    for data in (rows, {"problems": rows}):
        path = tmp_path / "p.json"
        path.write_text(json.dumps(data))
        (problem,) = load(str(path)).problems
        assert problem == Conv("j", 2, 4, 8, 8, 4, 3, 3, (2, 2), "valid")


def test_deepbench_header(tmp_path):
    path = tmp_path / "conv_problems.h"
    path.write_text(DEEPBENCH)
    problems = load(str(path)).problems
    assert [p.name for p in problems] == ["training_set-1", "training_set-2", "inference_server_set-1"]
    speech = problems[0]
    assert (speech.N, speech.C, speech.H, speech.W, speech.K, speech.R, speech.S) == (4, 1, 161, 700, 32, 5, 20)
    assert speech.stride == (2, 2) and speech.padding == (0, 0)
    assert problems[1].padding == (1, 1) and problems[2].N == 1


@pytest.mark.parametrize("text, message", [
    ("N,C,H,W,K,R\n1,1,4,4,1,3\n", "missing ['S']"),
    ("N,C,H,W,K,R,S,colour\n1,1,4,4,1,3,3,red\n", "unknown CSV column"),
    ("N,C,H,W,K,R,S\n1,1,4,4,1,three,3\n", "row 1: R must be an integer; received 'three'"),
    ("N,C,H,W,K,R,S\n1,0,4,4,1,3,3\n", "C must be an integer >= 1; received '0'"),
    ("N,C,H,W,K,R,S,stride\n1,1,4,4,1,3,3,2x2x2\n", "stride must be one number or a pair"),
    ("N,C,H,W,K,R,S,groups\n1,3,4,4,4,3,3,2\n", "groups=2 must divide C=3 and K=4"),
    ("N,C,H,W,K,R,S\n1,1,4,4,1,5,5\n", "does not fit"),
    ("N,C,H,W,K,R,S\n", "holds no problems"),
])
def test_bad_csv_rows_say_what_and_where(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ShapeFileError, match="bad.csv") as info:
        load(str(path))
    assert message in str(info.value)


def test_bad_json_and_deepbench_and_missing_file(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    (tmp_path / "b.json").write_text(json.dumps([{"N": 1, "C": 1, "H": 4, "W": 4, "K": 1, "R": 3, "S": 3, "x": 1}]))
    (tmp_path / "c.h").write_text("training_set = { std::make_tuple(4, 4, 1, 1, 1, 3, 3) };")
    for name, message in (("a.json", "not JSON"), ("b.json", "unknown key(s) ['x']"), ("c.h", "expected 11 values"),
                          ("missing.csv", "cannot read shapes file")):
        with pytest.raises(ValueError, match=name.split(".")[0]) as info:
            load(str(tmp_path / name))
        assert message in str(info.value)
