"""`python -m keras_neuronprune` runs the command line."""

import sys

from keras_neuronprune.cli import main

sys.exit(main())
