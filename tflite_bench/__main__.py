import sys

from tflite_bench.cli import main

sys.exit(main())
