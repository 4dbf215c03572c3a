"""``python -m bench`` in a checkout: the same as the installed ``cnnkernels-bench``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
