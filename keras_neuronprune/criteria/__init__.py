"""Channel-importance criteria and their registry.

Every criterion subclasses `Criterion` (base_criterion.py) and scores whole
channel groups: `criterion.score(ScoringContext(model, groups, data, loss,
step)) -> {group_name: float64 array (size,)}`, higher = more important.
`get(name_or_instance)` resolves the string aliases below (and class
names, config dicts, classes and instances).

Data-free: `"l1"`, `"l2"` (filter norms), `"bn_scale"` (Network Slimming,
alias `"l1_gamma"`), `"rni"` (bounded BN scales), `"bn_stats"` (BN
parameters), `"greg"` (GReg-1/2), `"random"`.
Data-driven (need `data` and `loss`): `"taylor"`, `"taylor_activation"`,
`"taylor_so"`, and the second-order criteria (`"thinet"`, `"nisp"`,
`"chip"`, `"sosp"`, `"singe"`, `"hessian_spectral"`), whose modules are
imported on first use.
"""

import importlib
import importlib.util
import inspect

import keras

from keras_neuronprune.core.surgery import find_layer
from keras_neuronprune.criteria.base_criterion import Criterion
from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.criteria.base_criterion import normalize_scores
from keras_neuronprune.criteria.bn_scale import BNScale
from keras_neuronprune.criteria.bn_statistics import BNStatistics
from keras_neuronprune.criteria.greg import GReg
from keras_neuronprune.criteria.l1_norm import L1Norm
from keras_neuronprune.criteria.l2_norm import L2Norm
from keras_neuronprune.criteria.random_criterion import RandomCriterion
from keras_neuronprune.criteria.rni import RNI
from keras_neuronprune.criteria.taylor import Taylor
from keras_neuronprune.criteria.taylor_activation import TaylorActivation
from keras_neuronprune.criteria.taylor_second_order import TaylorSecondOrder

ALL_OBJECTS = {
    "l1": L1Norm,
    "l2": L2Norm,
    "bn_scale": BNScale,
    "l1_gamma": BNScale,
    "network_slimming": BNScale,
    "rni": RNI,
    "taylor": Taylor,
    "taylor_activation": TaylorActivation,
    "taylor_so": TaylorSecondOrder,
    "bn_stats": BNStatistics,
    "greg": GReg,
    "random": RandomCriterion,
}

# Criteria written in other modules of this package, imported lazily so a
# problem in one of them does not break the others.
_LAZY_MODULES = (
    "thinet",
    "nisp",
    "chip",
    "sosp",
    "singe",
    "hessian_spectral",
)


def _load_lazy(module_name):
    module = importlib.import_module(
        f"keras_neuronprune.criteria.{module_name}"
    )
    found = {}
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(cls, Criterion)
            and cls is not Criterion
            and cls.__module__ == module.__name__
            and not cls.__name__.startswith("_")
        ):
            found[getattr(cls, "alias", None) or module_name] = cls
    if len(found) == 1 and module_name not in found:
        found[module_name] = next(iter(found.values()))
    return found


def all_criteria():
    """Dict alias -> criterion class, including the lazily loaded ones."""
    objects = dict(ALL_OBJECTS)
    for name in _LAZY_MODULES:
        if importlib.util.find_spec(f"keras_neuronprune.criteria.{name}"):
            objects.update(
                {k: v for k, v in _load_lazy(name).items() if k not in objects}
            )
    return objects


def _lookup(name):
    key = name.strip().lower()
    objects = dict(ALL_OBJECTS)
    if key not in objects and key in _LAZY_MODULES:
        if importlib.util.find_spec(f"keras_neuronprune.criteria.{key}"):
            objects.update(_load_lazy(key))
    if key not in objects and not any(
        cls.__name__.lower() == key for cls in objects.values()
    ):
        objects = all_criteria()
    if key in objects:
        return objects[key]
    for cls in objects.values():
        if cls.__name__.lower() == key:
            return cls
    return None


def serialize(criterion):
    """Keras config dict of a criterion (for `deserialize`)."""
    return keras.saving.serialize_keras_object(criterion)


def deserialize(config):
    """Inverse of `serialize`."""
    obj = keras.saving.deserialize_keras_object(config)
    if not isinstance(obj, Criterion):
        raise ValueError(
            f"`config` does not describe a Criterion. Received: {config!r}"
        )
    return obj


def get(identifier):
    """Resolves a criterion from an alias, name, config, class or instance.

    Args:
        identifier: a `Criterion` instance (returned as is), a string alias
            (`"l1"`, `"rni"`, `"taylor"`...) or class name, a config dict
            from `serialize`, or a `Criterion` subclass (instantiated with
            its defaults).

    Returns:
        A `Criterion` instance.

    Raises:
        ValueError: for an unknown name or a bad config.
        TypeError: for any other type.

    Example:
        >>> criterion = keras_neuronprune.criteria.get("l1")
    """
    if isinstance(identifier, Criterion):
        return identifier
    if isinstance(identifier, str):
        cls = _lookup(identifier)
        if cls is None:
            raise ValueError(
                "Unknown criterion. Known aliases: "
                f"{sorted(all_criteria())}. Received: "
                f"identifier={identifier!r}"
            )
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Criterion):
        return identifier()
    raise TypeError(
        "`identifier` must be a Criterion, an alias string, a config dict or "
        f"a Criterion class. Received: identifier={identifier!r}"
    )


__all__ = [
    "ALL_OBJECTS",
    "BNScale",
    "BNStatistics",
    "Criterion",
    "GReg",
    "L1Norm",
    "L2Norm",
    "RNI",
    "RandomCriterion",
    "ScoringContext",
    "Taylor",
    "TaylorActivation",
    "TaylorSecondOrder",
    "all_criteria",
    "deserialize",
    "find_layer",
    "get",
    "normalize_scores",
    "serialize",
]
