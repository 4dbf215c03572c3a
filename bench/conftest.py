"""Options of the pytest-benchmark suite:

    pytest bench/ --benchmark-only [--bench-set NAME] [--shapes FILE] [--impl NAME|module:Object] [--bench-threads N]
"""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("cnnkernels bench")
    group.addoption("--bench-set", action="append", default=None,
                    help="shape set(s) to benchmark (repeatable; default: tutorial and pooling unless --shapes)")
    group.addoption("--shapes", action="append", default=[], metavar="FILE",
                    help="problems from a CSV, JSON or DeepBench conv_problems.h file (repeatable)")
    group.addoption("--impl", action="append", default=None, metavar="NAME|module:Object",
                    help="implementation (repeatable), as cnnkernels-bench takes it (default: cnnkernels, PyTorch and "
                         "installed engines)")
    group.addoption("--bench-threads", type=int, default=1, help="threads for every implementation (default 1)")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    from . import plugins, shapefiles
    from .impls import CONV_PASSES, POOL_PASSES
    from .shapes import SETS, Conv

    config = metafunc.config
    sets = [SETS[name] for name in config.getoption("--bench-set") or ()]
    sets += [shapefiles.load(path) for path in config.getoption("--shapes")]
    if not sets:
        sets = [SETS["tutorial"], SETS["pooling"]]
    cases, ids = [], []
    implementations = plugins.resolve(config.getoption("--impl"))
    for shape_set in sets:
        for problem in shape_set.problems:
            for impl in implementations:
                for pass_name in CONV_PASSES if isinstance(problem, Conv) else POOL_PASSES:
                    cases.append((problem, impl, pass_name))
                    ids.append(f"{problem.name}-{impl.name}-{pass_name}")
    metafunc.parametrize("case", cases, ids=ids)


@pytest.fixture
def threads(request):
    return request.config.getoption("--bench-threads")
