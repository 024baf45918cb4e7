"""`python -m benchmarks.quality`."""

import sys

from benchmarks.quality.cli import main

if __name__ == "__main__":
    sys.exit(main())
