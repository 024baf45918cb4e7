import warnings

import keras
import numpy as np
import pytest

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.core import PrunedModel
from keras_neuronprune.sparsity import WeightPruningController
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import strip_weight_pruning
from keras_neuronprune.sparsity.layers import WeightMaskedMixin
from keras_neuronprune.sparsity.schedules import PolynomialDecay

XY = (np.zeros((4, 64), "float32"), np.zeros((4,), "int64"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sparsity": 1.0}, "`sparsity` must be a number in \\[0, 1\\)"),
        ({"sparsity": -0.2}, "Received: sparsity=-0.2"),
        ({"sparsity": "half"}, "Received: sparsity='half'"),
        ({"method": "obd", "sparsity": 0.5}, "Received: method='obd'"),
        ({"sparsity_m_by_n": (4, 4)}, "m < n"),
        ({"sparsity_m_by_n": (5, 4)}, "sparsity_m_by_n=\\(5, 4\\)"),
        ({"sparsity_m_by_n": (2, 4), "sparsity": 0.7}, "sparsity=0.7"),
        ({"block_size": (0, 2), "sparsity": 0.5}, "block_size"),
        (
            {"block_size": (2, 2), "sparsity_m_by_n": (2, 4)},
            "not both",
        ),
        ({"method": "snip", "sparsity": 0.5}, "needs `data`"),
        ({"method": "nnrelief", "sparsity": 0.5}, "needs `data`"),
        ({"method": "rigl", "sparsity": 0.5, "data": XY}, "end_step"),
        (
            {"method": "rigl", "sparsity": 0.5, "data": XY, "end_step": 9},
            "needs a loss",
        ),
        (
            {
                "method": "snip",
                "sparsity": 0.5,
                "data": XY,
                "loss": "mse",
                "schedule": PolynomialDecay(0, 0.5, 0, 10),
            },
            "schedule` must be None",
        ),
        ({"method": "iss_p", "sparsity": 0.5}, "needs `end_step`"),
        ({"sparsity": 0.5, "drop_fraction": 0.5}, "only applies to"),
        (
            {
                "method": "rigl",
                "sparsity": 0.5,
                "data": XY,
                "loss": "mse",
                "end_step": 9,
                "block_size": (2, 2),
            },
            "single weights only",
        ),
        ({"sparsity": 0.5, "distribution": "erdos"}, "distribution='erdos'"),
        ({"threshold": "std"}, "give `quality`"),
        ({"threshold": "std", "quality": 0.5, "sparsity": 0.5}, "must be None"),
        ({"sparsity": 0.5, "quality": 0.5}, "only applies to"),
        ({}, "needs `sparsity`"),
        (
            {"sparsity": 0.5, "schedule": PolynomialDecay(0.0, 0.9, 0, 10)},
            "disagrees",
        ),
        ({"sparsity": 0.5, "layers": ["nope"]}, "Received: 'nope'"),
    ],
)
def test_bad_arguments_raise_clear_errors(mlp_factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune_weights(mlp_factory(), **kwargs)


def test_shapes_that_do_not_admit_the_pattern_name_the_layer(cnn_factory):
    model = cnn_factory()
    with pytest.raises(ValueError, match="'c1'.*4 input channels"):
        prune_weights(model, sparsity_m_by_n=(2, 8), layers=["c1"])
    with pytest.raises(ValueError, match="'dw'.*depthwise"):
        prune_weights(model, sparsity_m_by_n=(2, 4))
    with pytest.raises(ValueError, match="'head'.*block_size=\\(3, 3\\)"):
        prune_weights(model, sparsity=0.5, block_size=(3, 3), layers=["head"])


def test_unsupported_models_and_layers_are_rejected(mlp_factory):
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="subclassed"):
        prune_weights(sub, sparsity=0.5)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        prune_weights(unbuilt, sparsity=0.5)
    with pytest.raises(TypeError, match="keras.Model"):
        prune_weights("model", sparsity=0.5)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4, name="fc")(inputs)
    h = keras.layers.LayerNormalization(name="ln")(h)
    model = keras.Model(inputs, h)
    with pytest.raises(ValueError, match="'ln'.*cannot be weight-pruned"):
        prune_weights(model, sparsity=0.5, layers=["ln"])


def test_input_model_is_never_modified(mlp_factory, digits):
    xtr, _, ytr, _ = digits
    model = mlp_factory()
    before = [w.numpy().copy() for w in model.weights]
    layer_types = [type(layer) for layer in model.layers]
    pruned = prune_weights(model, sparsity=0.75)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(
        xtr[:64],
        ytr[:64],
        batch_size=32,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    assert [type(layer) for layer in model.layers] == layer_types
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert isinstance(pruned, PrunedModel)
    assert isinstance(pruned.controller, WeightPruningController)
    # Same layer names, fresh layer objects.
    assert [layer.name for layer in pruned.layers] == [
        layer.name for layer in model.layers
    ]
    assert not any(a is b for a in pruned.layers for b in model.layers)


def _fire(pruned, step=0):
    pruned.controller.on_train_begin(pruned)
    pruned.controller.on_train_batch_begin(pruned, step)


def test_uniform_magnitude_masks_have_the_sparsity_of_every_layer(
    mlp_factory,
):
    model = mlp_factory()
    pruned = prune_weights(model, sparsity=0.7)
    _fire(pruned)
    scalars = pruned.controller.summary_scalars(pruned)
    for name, layer in (("fc1", 64 * 64), ("fc2", 64 * 64), ("logits", 640)):
        mask = pruned.get_layer(name).kernel_mask.numpy()
        assert int((mask == 0).sum()) == int(np.floor(0.7 * layer + 0.5))
        assert scalars[f"sparsity/{name}"] == pytest.approx(0.7, abs=1e-3)
        kernel = model.get_layer(name).kernel.numpy()
        # Pruned exactly the smallest magnitudes of the original kernel.
        assert (
            np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()
        )
        masked = pruned.get_layer(name).kernel_variable.numpy()
        assert np.all(masked[mask == 0] == 0)
    assert scalars["sparsity"] == pytest.approx(0.7, abs=1e-3)


def test_global_magnitude_reaches_global_target(mlp_factory):
    pruned = prune_weights(mlp_factory(), sparsity=0.6, distribution="global")
    _fire(pruned)
    stats = pruned.controller.layer_stats(pruned)
    pruned_count = sum(p for p, _ in stats.values())
    total = sum(t for _, t in stats.values())
    assert pruned_count == int(np.floor(0.6 * total + 0.5))
    per_layer = [p / t for p, t in stats.values()]
    assert max(per_layer) - min(per_layer) > 0.01


def test_std_threshold_prunes_below_quality_times_std(mlp_factory):
    model = mlp_factory()
    pruned = prune_weights(model, threshold="std", quality=0.8)
    _fire(pruned)
    for name in ("fc1", "fc2", "logits"):
        kernel = model.get_layer(name).kernel.numpy()
        expected = np.abs(kernel) >= 0.8 * kernel.std()
        mask = pruned.get_layer(name).kernel_mask.numpy()
        np.testing.assert_array_equal(mask.astype(bool), expected)


def test_m_by_n_and_block_patterns_in_the_model(cnn_factory):
    pruned = prune_weights(
        cnn_factory(), sparsity_m_by_n=(2, 4), layers=["pw", "head"]
    )
    _fire(pruned)
    for name in ("pw", "head"):
        mask = pruned.get_layer(name).kernel_mask.numpy()
        groups = np.moveaxis(mask, -2, -1).reshape(-1, 4)
        assert np.all(groups.sum(axis=1) == 2)
    assert not isinstance(pruned.get_layer("c1"), WeightMaskedMixin)
    blocked = prune_weights(
        cnn_factory(), sparsity=0.5, block_size=(4, 2), layers=["pw", "head"]
    )
    _fire(blocked)
    mask = blocked.get_layer("head").kernel_mask.numpy()
    tiles = mask.reshape(2, 4, 2, 2)
    assert np.all(tiles.min(axis=(1, 3)) == tiles.max(axis=(1, 3)))


def test_sequential_and_nested_models(mlp_factory):
    seq = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(6), keras.layers.Dense(2)]
    )
    pruned = prune_weights(seq, sparsity=0.5)
    assert isinstance(pruned, PrunedModel)
    assert (
        sum(isinstance(layer, WeightMaskedMixin) for layer in pruned.layers)
        == 2
    )
    inner = mlp_factory()
    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(3, name="top")(inner(inputs))
    outer = keras.Model(inputs, outputs)
    pruned = prune_weights(outer, sparsity=0.5, layers=["mlp/fc2", "top"])
    names = [n for n, _ in pruned.controller.layers_of(pruned)]
    assert names == ["mlp/fc2", "top"]
    x = np.random.default_rng(0).normal(size=(3, 64)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(pruned(x)), np.asarray(outer(x)), atol=1e-5
    )


def test_layer_selection_by_callable(cnn_factory):
    pruned = prune_weights(
        cnn_factory(),
        sparsity=0.5,
        layers=lambda layer: isinstance(layer, keras.layers.Conv2D),
    )
    names = [n for n, _ in pruned.controller.layers_of(pruned)]
    assert names == ["c1", "pw"]


def _xnnpack_model():
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.ZeroPadding2D(1)(inputs)
    h = keras.layers.Conv2D(8, 3, strides=2, name="stem")(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.Conv2D(16, 1, name="pw1")(h)
    h = keras.layers.Conv2D(16, 1, name="pw2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(h))


def test_xnnpack_sparse_prunes_only_1x1_convolutions(mlp_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruned = prune_weights(
            _xnnpack_model(), sparsity=0.75, xnnpack_sparse=True
        )
    names = [n for n, _ in pruned.controller.layers_of(pruned)]
    assert names == ["pw1", "pw2"]
    assert pruned.controller.get_config()["xnnpack_sparse"] is True
    with pytest.raises(ValueError, match="xnnpack_sparse=True"):
        prune_weights(mlp_factory(), sparsity=0.5, xnnpack_sparse=True)
    inputs = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(8, 1)(inputs)
    plain = keras.Model(inputs, keras.layers.Flatten()(h))
    with pytest.warns(UserWarning, match="no such stem"):
        prune_weights(plain, sparsity=0.5, xnnpack_sparse=True)


def test_strip_gives_plain_layers_with_exact_zeros(cnn_factory, cnn_data):
    x, _ = cnn_data
    pruned = prune_weights(cnn_factory(), sparsity=0.5)
    _fire(pruned)
    stripped = strip_weight_pruning(pruned)
    assert isinstance(stripped, keras.Model)
    assert not isinstance(stripped, PrunedModel)
    assert not any(isinstance(la, WeightMaskedMixin) for la in stripped.layers)
    assert [type(la).__name__ for la in stripped.layers[1:]] == [
        "Conv2D",
        "DepthwiseConv2D",
        "Conv2D",
        "BatchNormalization",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    for name, layer in pruned.controller.layers_of(pruned):
        mask = layer.kernel_mask.numpy()
        kernel = stripped.get_layer(name).kernel.numpy()
        assert kernel.shape == mask.shape
        np.testing.assert_array_equal(kernel == 0, mask == 0)
    np.testing.assert_allclose(
        np.asarray(stripped(x)), np.asarray(pruned(x)), atol=1e-5
    )
    assert pruned.controller.strip(pruned).count_params() == (
        stripped.count_params()
    )


def test_controller_config_round_trip_and_foreign_schedule(mlp_factory):
    schedule = PolynomialDecay(0.0, 0.6, 0, 20, frequency=5)
    pruned = prune_weights(mlp_factory(), schedule=schedule, distribution="erk")
    config = pruned.controller.get_config()
    again = WeightPruningController.from_config(config)
    assert again.get_config() == config
    assert again.sparsity == 0.6

    class Foreign:
        # tfmot's calling convention, no get_config.
        def __call__(self, step):
            return step % 2 == 0, 0.5

    pruned = prune_weights(mlp_factory(), schedule=Foreign())
    _fire(pruned, step=2)
    assert pruned.controller.summary_scalars(pruned)["sparsity"] == (
        pytest.approx(0.5, abs=1e-3)
    )
    with pytest.raises(TypeError, match="no `get_config`"):
        pruned.controller.get_config()
