"""The ``convnet`` console script: loads the command line, so that Ctrl-C while NumPy and the kernels are still
importing ends with one line ("convnet: interrupted", exit 130) instead of a traceback."""

import sys


def main(argv=None) -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("convnet: interrupted", file=sys.stderr)
        return 130
    return run(argv)
