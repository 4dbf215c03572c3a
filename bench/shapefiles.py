"""Convolution problems from a file: CSV, JSON, or DeepBench's ``conv_problems.h``.

CSV: a header naming the columns ``N, C, H, W, K, R, S`` (required) and ``stride,
padding, dilation, groups, name`` (optional; defaults 1, 0, 1, 1, "row-<n>").
A stride or dilation is ``2`` or ``2x1``; a padding is ``1``, ``1x2``, ``same``
or ``valid``. JSON: a list of objects with the same keys (or ``{"problems":
[...]}``), where a pair may also be a list. DeepBench: every
``std::make_tuple(w, h, c, n, k, s, r, pad_w, pad_h, wstride, hstride)`` of the
header, named after the vector it sits in (``training_set-3``).
"""

from __future__ import annotations

import csv
import json
import os
import re

from .shapes import Conv, ShapeSet

REQUIRED = ("N", "C", "H", "W", "K", "R", "S")
OPTIONAL = ("stride", "padding", "dilation", "groups", "name")
_TUPLE = re.compile(r"make_tuple\s*\(([^()]*)\)")
_VECTOR = re.compile(r"(\w+)\s*=\s*\{")


class ShapeFileError(ValueError):
    """A shapes file that cannot be read as problems; the message names the file and the row."""


def load(path: str) -> ShapeSet:
    """The problems of ``path`` as a shape set named after the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShapeFileError(f"cannot read shapes file {path!r}: {exc}") from None
    base = os.path.basename(path)
    lower = base.lower()
    if lower.endswith(".json"):
        problems = _from_json(text, base)
    elif lower.endswith((".h", ".hpp")) or "make_tuple" in text:
        problems = _from_deepbench(text, base)
    else:
        problems = _from_csv(text, base)
    if not problems:
        raise ShapeFileError(f"shapes file {path!r} holds no problems")
    return ShapeSet(base, f"problems read from {path}", "as given", tuple(problems))


def _from_csv(text: str, base: str) -> list[Conv]:
    reader = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    columns = {name.strip() for name in reader.fieldnames or ()}
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ShapeFileError(f"{base}: the CSV header must name {', '.join(REQUIRED)}; "
                             f"missing {missing}, received header {sorted(columns)}")
    unknown = columns - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise ShapeFileError(f"{base}: unknown CSV column(s) {sorted(unknown)}; known: {REQUIRED + OPTIONAL}")
    return [_problem({k.strip(): (v or "").strip() for k, v in row.items()}, f"{base} row {i}", f"row-{i}")
            for i, row in enumerate(reader, start=1)]


def _from_json(text: str, base: str) -> list[Conv]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShapeFileError(f"{base}: not JSON ({exc})") from None
    if isinstance(data, dict):
        data = data.get("problems")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ShapeFileError(f"{base}: expected a list of objects with keys {REQUIRED + OPTIONAL} "
                             "(or {\"problems\": [...]})")
    problems = []
    for i, item in enumerate(data, start=1):
        unknown = set(item) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise ShapeFileError(f"{base} item {i}: unknown key(s) {sorted(unknown)}; known: {REQUIRED + OPTIONAL}")
        problems.append(_problem(item, f"{base} item {i}", f"item-{i}"))
    return problems


def _from_deepbench(text: str, base: str) -> list[Conv]:
    text = re.sub(r"//[^\n]*", "", text)
    vectors = [(m.start(), m.group(1)) for m in _VECTOR.finditer(text)]
    problems, counts = [], {}
    for match in _TUPLE.finditer(text):
        vector = next((name for start, name in reversed(vectors) if start < match.start()), "problem")
        counts[vector] = counts.get(vector, 0) + 1
        where = f"{base} {vector} entry {counts[vector]}"
        try:
            values = [int(v) for v in match.group(1).split(",")]
        except ValueError:
            raise ShapeFileError(f"{where}: expected integers; received ({match.group(1).strip()})") from None
        if len(values) != 11:
            raise ShapeFileError(f"{where}: expected 11 values (w, h, c, n, k, s, r, pad_w, pad_h, wstride, "
                                 f"hstride); received {len(values)}")
        w, h, c, n, k, s, r, pad_w, pad_h, wstride, hstride = values
        problems.append(_problem({"N": n, "C": c, "H": h, "W": w, "K": k, "R": r, "S": s,
                                  "stride": (hstride, wstride), "padding": (pad_h, pad_w)},
                                 where, f"{vector}-{counts[vector]}"))
    return problems


def _int(value, what: str, where: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ShapeFileError(f"{where}: {what} must be an integer; received {value!r}") from None
    if isinstance(value, float) and value != number or number < minimum:
        raise ShapeFileError(f"{where}: {what} must be an integer >= {minimum}; received {value!r}")
    return number


def _pair(value, what: str, where: str, minimum: int):
    if isinstance(value, str) and "x" in value.lower():
        parts = value.lower().split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return _int(value, what, where, minimum)
    if len(parts) != 2:
        raise ShapeFileError(f"{where}: {what} must be one number or a pair like 2x1; received {value!r}")
    return tuple(_int(part, what, where, minimum) for part in parts)


def _problem(row: dict, where: str, default_name: str) -> Conv:
    def given(key):
        value = row.get(key)
        return None if value is None or value == "" else value

    dims = {key: _int(given(key), key, where, 1) for key in REQUIRED}
    padding = given("padding") or 0
    if not (isinstance(padding, str) and padding.lower() in ("same", "valid")):
        padding = _pair(padding, "padding", where, 0)
    problem = Conv(str(given("name") or default_name), **dims, stride=_pair(given("stride") or 1, "stride", where, 1),
                   padding=padding, dilation=_pair(given("dilation") or 1, "dilation", where, 1),
                   groups=_int(given("groups") or 1, "groups", where, 1))
    if problem.C % problem.groups or problem.K % problem.groups:
        raise ShapeFileError(f"{where}: groups={problem.groups} must divide C={problem.C} and K={problem.K}")
    if min(problem.out_hw()) < 1:
        raise ShapeFileError(f"{where}: the kernel ({problem.R}x{problem.S}, dilation {problem.dilation}) does not fit "
                             f"the padded {problem.H}x{problem.W} input")
    return problem
