"""Options of the pytest-benchmark suite: `pytest bench/ --benchmark-only [--bench-set NAME] [--bench-threads N]`."""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("cnnkernels bench")
    group.addoption("--bench-set", action="append", default=None,
                    help="shape set(s) to benchmark (repeatable; default: tutorial and pooling)")
    group.addoption("--bench-threads", type=int, default=1, help="threads for every implementation (default 1)")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    from bench import impls
    from bench.impls import CONV_PASSES, POOL_PASSES
    from bench.shapes import SETS, Conv

    names = metafunc.config.getoption("--bench-set") or ["tutorial", "pooling"]
    cases, ids = [], []
    for name in names:
        for problem in SETS[name].problems:
            for impl in impls.available():
                for pass_name in CONV_PASSES if isinstance(problem, Conv) else POOL_PASSES:
                    cases.append((problem, impl, pass_name))
                    ids.append(f"{problem.name}-{impl.name}-{pass_name}")
    metafunc.parametrize("case", cases, ids=ids)


@pytest.fixture
def threads(request):
    return request.config.getoption("--bench-threads")
