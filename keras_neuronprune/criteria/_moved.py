"""Deprecated spellings of the pruning drivers that used to live here.

`criteria/` only scores; the drivers that thin models (`thinet_prune`,
`singe_prune`, `hessian_spectral_prune`) moved to
`keras_neuronprune.pruning`. Their old paths resolve through a module
`__getattr__`, with a `DeprecationWarning`, for one release: the driver is
imported when the old name is read, never when a criterion module loads.
"""

import importlib
import warnings


def moved_driver(module, name, driver, new_module):
    """Resolves `module.name` when it is the moved `driver`.

    Args:
        module: the old module's `__name__`.
        name: the attribute asked for.
        driver: the moved function's name.
        new_module: the module that defines it now.

    Returns:
        The driver function.

    Raises:
        AttributeError: `name` is not `driver`.
    """
    if name != driver:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"`{module}.{driver}` is deprecated; use "
        f"`keras_neuronprune.pruning.{driver}`.",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), driver)
