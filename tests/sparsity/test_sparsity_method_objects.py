"""Sparsity methods as configured objects (issue #10 item 3)."""

import keras
import numpy as np
import pytest

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.sparsity import WeightPruningController
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity.methods import FixedMaskMethod
from keras_neuronprune.sparsity.methods import IssPMethod
from keras_neuronprune.sparsity.methods import MagnitudeMethod
from keras_neuronprune.sparsity.methods import NNReliefMethod
from keras_neuronprune.sparsity.methods import RigLMethod
from keras_neuronprune.sparsity.methods import SclMethod
from keras_neuronprune.sparsity.methods import SnipMethod

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _tiny():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(10, activation="relu", name="a")(inputs)
    h = keras.layers.Dense(8, activation="relu", name="b")(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="c")(h))


def _xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 12)).astype("float32")
    return x, rng.integers(0, 3, size=32)


def _trained_masks(**kwargs):
    x, y = _xy()
    pruned = prune_weights(_tiny(), **kwargs)
    keras.utils.set_random_seed(1)
    pruned.compile(keras.optimizers.Adam(1e-2), LOSS)
    pruned.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[UpdatePruning()]
    )
    layers = pruned.controller.layers_of(pruned)
    return {n: layer.current_mask() for n, layer in layers}


# (string name, deprecated kwargs, the equivalent method object, shared).
CASES = [
    ("magnitude", {"threshold": "std", "quality": 0.7},
     MagnitudeMethod(threshold="std", quality=0.7), {}),
    ("snip", {"num_batches": 2}, SnipMethod(num_batches=2),
     {"sparsity": 0.7, "data": _xy(), "loss": LOSS}),
    ("rigl", {"end_step": 12, "update_frequency": 3, "drop_fraction": 0.4,
              "seed": 3},
     RigLMethod(end_step=12, update_frequency=3, drop_fraction=0.4, seed=3),
     {"sparsity": 0.7, "data": _xy(), "loss": LOSS}),
    ("scl", {"end_step": 6, "update_frequency": 2, "penalty": 0.2,
             "penalty_rate": 0.3, "mask_init": 0.1},
     SclMethod(end_step=6, update_frequency=2, penalty=0.2,
               penalty_rate=0.3, mask_init=0.1),
     {"sparsity": 0.5}),
    ("iss_p", {"end_step": 8, "shrink_ratio": 0.8},
     IssPMethod(end_step=8, shrink_ratio=0.8), {"sparsity": 0.5}),
    ("nnrelief", {"num_batches": 2}, NNReliefMethod(num_batches=2),
     {"sparsity": 0.6, "data": _xy()}),
]  # fmt: skip


@pytest.mark.parametrize("name,kwargs,method,shared", CASES)
def test_method_object_matches_string_and_deprecated_kwargs(
    name, kwargs, method, shared
):
    with pytest.warns(DeprecationWarning, match="configure the method"):
        old = _trained_masks(method=name, **kwargs, **shared)
    new = _trained_masks(method=method, **shared)
    assert sorted(old) == sorted(new)
    for key in old:
        np.testing.assert_array_equal(old[key], new[key])
    assert 0 < sum(float((m == 0).sum()) for m in new.values())


@pytest.mark.parametrize("method", [case[2] for case in CASES])
def test_get_config_round_trip_and_registration(method):
    config = method.get_config()
    again = type(method).from_config(config)
    assert again.get_config() == config
    serialized = keras.saving.serialize_keras_object(method)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(method)
    assert restored.get_config() == config


def test_fixed_mask_and_default_configs():
    assert FixedMaskMethod().get_config() == {}
    assert MagnitudeMethod().get_config() == {
        "threshold": "fraction",
        "quality": None,
    }
    assert RigLMethod(end_step=5).drop_fraction == 0.3


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: RigLMethod(), "needs `end_step`"),
        (lambda: RigLMethod(end_step=5, drop_fraction=0.0), "drop_fraction"),
        (lambda: RigLMethod(end_step=5, drop_fraction=1.0), "\\(0, 1\\)"),
        (
            lambda: RigLMethod(end_step=5, drop_fraction_decay="linear"),
            "drop_fraction_decay='linear'",
        ),
        (lambda: RigLMethod(end_step=0), "end_step=0"),
        (lambda: RigLMethod(end_step=5, seed=-1), "seed=-1"),
        (lambda: RigLMethod(end_step=5, update_frequency=0), "update_freq"),
        (lambda: IssPMethod(), "needs `end_step`"),
        (lambda: IssPMethod(end_step=3, shrink_ratio=1.5), "shrink_ratio"),
        (lambda: SclMethod(penalty=-1), "penalty=-1"),
        (lambda: SclMethod(penalty_rate=0), "penalty_rate=0"),
        (lambda: SclMethod(mask_init=0), "mask_init=0"),
        (lambda: SnipMethod(num_batches=0), "num_batches=0"),
        (lambda: NNReliefMethod(num_batches=1.5), "num_batches=1.5"),
        (lambda: MagnitudeMethod(threshold="abs"), "threshold='abs'"),
        (lambda: MagnitudeMethod(threshold="std"), "give `quality`"),
        (lambda: MagnitudeMethod(quality=0.5), "only applies to"),
        (
            lambda: MagnitudeMethod(threshold="std", quality=-1),
            "quality=-1",
        ),
    ],
)
def test_bad_hyper_parameters_raise_clear_errors(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_kwargs_with_a_method_object_and_unknown_kwargs_are_refused():
    with pytest.raises(ValueError, match="constructor, not to prune_weights"):
        prune_weights(_tiny(), method=MagnitudeMethod(), quality=0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        prune_weights(_tiny(), sparsity=0.5, foo=1)
    with pytest.raises(ValueError, match="Received: method='fixed'"):
        prune_weights(_tiny(), method="fixed")


def test_the_method_object_is_copied_not_shared():
    method = SnipMethod()
    x, y = _xy()
    pruned = prune_weights(
        _tiny(), method=method, sparsity=0.5, data=(x, y), loss=LOSS
    )
    assert pruned.controller.algorithm is not method
    assert pruned.controller.algorithm.last_scores
    assert method.last_scores == {}


def test_controller_config_holds_the_method_config_and_reads_old_ones():
    pruned = prune_weights(
        _tiny(), method=IssPMethod(end_step=7, shrink_ratio=0.5), sparsity=0.5
    )
    config = pruned.controller.get_config()
    assert config["method"] == "iss_p"
    assert config["method_config"] == {"end_step": 7, "shrink_ratio": 0.5}
    assert WeightPruningController.from_config(config).get_config() == config
    # A configuration saved before methods were objects (flat keys).
    legacy = {k: v for k, v in config.items() if k != "method_config"}
    legacy.update(end_step=7, shrink_ratio=0.5, drop_fraction=0.3, seed=None)
    again = WeightPruningController.from_config(legacy)
    assert again.get_config() == config
    with pytest.warns(DeprecationWarning, match="IssPMethod\\(end_step=7\\)"):
        direct = WeightPruningController(
            method="iss_p", sparsity=0.5, end_step=7
        )
    assert direct.algorithm.end_step == 7


def test_ignored_layers_names_objects_and_classes(cnn_factory):
    model = cnn_factory()
    by_name = prune_weights(model, sparsity=0.5, ignored_layers=["c1", "dw"])
    names = [n for n, _ in by_name.controller.layers_of(by_name)]
    assert names == ["pw", "head"]
    by_object = prune_weights(
        model, sparsity=0.5, ignored_layers=[model.get_layer("head")]
    )
    names = [n for n, _ in by_object.controller.layers_of(by_object)]
    assert names == ["c1", "dw", "pw"]
    by_class = prune_weights(
        model, sparsity=0.5, ignored_layers=keras.layers.DepthwiseConv2D
    )
    names = [n for n, _ in by_class.controller.layers_of(by_class)]
    assert names == ["c1", "pw", "head"]
    with pytest.raises(ValueError, match="ignored_layers entry 'nope'"):
        prune_weights(model, sparsity=0.5, ignored_layers=["nope"])
    with pytest.raises(ValueError, match="No layer to prune"):
        prune_weights(
            model, sparsity=0.5, ignored_layers=["c1", "dw", "pw", "head"]
        )


def test_deprecated_layers_is_the_equivalent_exclusion(cnn_factory):
    model = cnn_factory()
    with pytest.warns(DeprecationWarning, match="ignored_layers"):
        old = prune_weights(model, sparsity=0.5, layers=["pw", "head"])
    new = prune_weights(model, sparsity=0.5, ignored_layers=["c1", "dw"])
    assert [n for n, _ in old.controller.layers_of(old)] == [
        n for n, _ in new.controller.layers_of(new)
    ]
    with pytest.raises(ValueError, match="not both"):
        prune_weights(model, sparsity=0.5, layers=["pw"], ignored_layers=["c1"])


def test_nested_model_names_cover_their_layers(mlp_factory):
    inner = mlp_factory()
    inputs = keras.Input((64,))
    outer = keras.Model(
        inputs, keras.layers.Dense(3, name="top")(inner(inputs))
    )
    pruned = prune_weights(outer, sparsity=0.5, ignored_layers=["mlp"])
    assert [n for n, _ in pruned.controller.layers_of(pruned)] == ["top"]
    pruned = prune_weights(outer, sparsity=0.5, ignored_layers=["fc1"])
    names = [n for n, _ in pruned.controller.layers_of(pruned)]
    assert names == ["mlp/fc2", "mlp/logits", "top"]
