"""Build of the Cython kernels; all metadata lives in pyproject.toml.

Environment switches, read at build time:
  CNNKERNELS_DEBUG=1   turn boundscheck/initializedcheck back on, -O0 -g (the test suite's debug run)
  CNNKERNELS_NATIVE=1  add -march=native (faster on the build machine, not portable)
  CNNKERNELS_SANITIZE=address  build with AddressSanitizer (run with LD_PRELOAD=$(gcc -print-file-name=libasan.so)
                       ASAN_OPTIONS=detect_leaks=0; see the README's Tests section)
Without an OpenMP-capable compiler the kernels still build, and run serially.
"""

import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("CNNKERNELS_DEBUG", "") not in ("", "0")
NATIVE = os.environ.get("CNNKERNELS_NATIVE", "") not in ("", "0")
SANITIZE = os.environ.get("CNNKERNELS_SANITIZE", "")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "initializedcheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}


# The optimizer steps promise NumPy's roundings (cnnkernels.updates): no a*b + c fused into one FMA, and sqrt
# without errno, so that it vectorises (with errno GCC calls sqrtf for each value: 2.4 ns a value, measured).
EXACT_ARITHMETIC = {"cnnkernels._activations": ["-ffp-contract=off", "-fno-math-errno"],
                    # the float64 sums of cnnkernels/simd/moments.c: the same bits from each ISA's clone
                    "cnnkernels._norm": ["-ffp-contract=off"]}


def _compiler_has_openmp(compiler) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "omp.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objects, os.path.join(tmp, "omp"), extra_postargs=["-fopenmp"])
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        openmp = (["/openmp"], []) if msvc else (["-fopenmp"], ["-fopenmp"])
        if not msvc and not _compiler_has_openmp(self.compiler):
            print("cnnkernels: compiler has no OpenMP; kernels will run serially", file=sys.stderr)
            openmp = ([], [])
        optimise = ["/O2"] if msvc else (["-O0", "-g"] if DEBUG else ["-O3"])
        if NATIVE and not msvc:
            optimise.append("-march=native")
        sanitize = [f"-fsanitize={SANITIZE}", "-fno-omit-frame-pointer"] if SANITIZE and not msvc else []
        for ext in self.extensions:
            exact = [] if msvc else EXACT_ARITHMETIC.get(ext.name, [])
            ext.extra_compile_args = optimise + openmp[0] + sanitize + exact
            ext.extra_link_args = openmp[1] + sanitize[:1]
        super().build_extensions()


def extensions():
    import numpy
    from Cython.Build import cythonize

    modules = [Extension("cnnkernels._conv", ["cnnkernels/_conv.pyx"]),
               Extension("cnnkernels._pool", ["cnnkernels/_pool.pyx", "cnnkernels/simd/pool2x2.c"],
                         include_dirs=["cnnkernels"])]
    # The convolutions' SIMD kernels (Winograd F(4x4) and F(2x2), direct, 1x1, row products): one extension, its
    # .pyx including the direct and F(2x2) wrappers (.pxi), the C compiled per ISA inside one object (target_clones).
    simd = ["winograd43.c", "winograd43_grad.c", "winograd43_avx512.c", "winograd22.c", "direct.c", "direct_flat.c",
            "direct_weight.c", "avx512.c", "rows.c", "dense.c"]
    modules.append(Extension("cnnkernels._winograd",
                             ["cnnkernels/_winograd.pyx", *(f"cnnkernels/simd/{name}" for name in simd)],
                             include_dirs=["cnnkernels"]))
    modules.append(Extension("cnnkernels._norm", ["cnnkernels/_norm.pyx", "cnnkernels/simd/moments.c"],
                             include_dirs=["cnnkernels"]))
    modules.append(Extension("cnnkernels._activations",
                             ["cnnkernels/_activations.pyx", "cnnkernels/simd/elementwise.c"],
                             include_dirs=["cnnkernels"]))
    modules.append(Extension("cnnkernels._memory", ["cnnkernels/_memory.pyx", "cnnkernels/simd/block_cache.c"],
                             include_dirs=["cnnkernels", numpy.get_include()]))
    # force: the generated C depends on DEBUG, which Cython's timestamp check cannot see;
    # regenerating it also makes build_ext recompile, so a switch of mode never reuses a stale build.
    return cythonize(modules, compiler_directives=DIRECTIVES, force=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
