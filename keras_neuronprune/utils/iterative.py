"""Deprecated: the iterative drivers live in `keras_neuronprune.pruning`.

`iterative_prune`, `default_fine_tune` and `global_keep` moved to
`keras_neuronprune.pruning.iterative`; these names still resolve here, with
a `DeprecationWarning`, for one release.
"""

import warnings

_MOVED = ("default_fine_tune", "global_keep", "iterative_prune")


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"`keras_neuronprune.utils.iterative.{name}` is deprecated; use "
            f"`keras_neuronprune.pruning.iterative.{name}`.",
            DeprecationWarning,
            stacklevel=2,
        )
        # Loaded on use only: utils sit below pruning.
        from keras_neuronprune.pruning import iterative

        return getattr(iterative, name)
    raise AttributeError(
        f"module 'keras_neuronprune.utils.iterative' has no attribute {name!r}"
    )
