"""Loads the example scripts (examples/ is not a package) for benchmarks."""

import importlib.util
import os

_EXAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"
)


def load_example(name):
    """Imports `examples/<name>.py` and returns the module."""
    path = os.path.join(_EXAMPLES, f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
