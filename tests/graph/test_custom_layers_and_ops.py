"""Custom layers seen through, raw keras.ops on channels, Lambda, dict and
dynamic inputs (issue 11)."""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.testing import assert_thin_matches
from keras_neuronprune.testing import random_keep
from keras_neuronprune.testing import randomize_weights

L = keras.layers
ops = keras.ops


class _Block(L.Layer):
    """Conv-BN-ReLU-Conv-BN with a residual add: made of layers and ops."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = L.Conv2D(filters * 2, 3, padding="same", name="conv1")
        self.bn1 = L.BatchNormalization(name="bn1")
        self.conv2 = L.Conv2D(filters, 3, padding="same", name="conv2")
        self.bn2 = L.BatchNormalization(name="bn2")
        self.se = _SqueezeExcite(name="se")

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.se(y)
        y = self.bn2(self.conv2(y), training=training)
        return x + y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class _SqueezeExcite(L.Layer):
    """A custom layer inside a custom layer (keras-hub's SE kind)."""

    def build(self, input_shape):
        n = input_shape[-1]
        self.reduce = L.Conv2D(max(n // 4, 1), 1, name="reduce")
        self.expand = L.Conv2D(n, 1, name="expand")

    def call(self, x):
        s = ops.mean(x, axis=(1, 2), keepdims=True)
        return x * ops.sigmoid(self.expand(ops.relu(self.reduce(s))))


class _Untraceable(L.Layer):
    """Runs eagerly only (reads a value): its call cannot be traced."""

    def call(self, x):
        return x * float(ops.convert_to_numpy(ops.mean(x)))

    def compute_output_shape(self, input_shape):
        return input_shape


def _custom_model(shared=True):
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same", name="stem")(x)
    block = _Block(8, name="block")
    y = block(y)
    y = block(y) if shared else _Block(8, name="block2")(y)
    y = L.Conv2D(8, 1, name="head")(y)
    y = L.GlobalAveragePooling2D()(y)
    return randomize_weights(keras.Model(x, L.Dense(3, name="out")(y)))


def _members(groups):
    return {m.layer for g in groups for m in g.members}


@pytest.mark.parametrize("shared", [True, False], ids=["twice", "two"])
def test_custom_block_is_traced_and_thins_exactly(shared):
    model = _custom_model(shared)
    groups = keras_neuronprune.channel_groups(model)
    assert {"block/conv1", "block/se/reduce"} <= _members(groups)
    inner = [g for g in groups if g.name.startswith("block/conv1")]
    assert inner and inner[0].prunable
    keep = random_keep(groups, rng=0)
    thin, _ = assert_thin_matches(model, keep, groups=groups)
    assert not any(isinstance(layer, _Block) for layer in thin.layers)
    # Layers the user's model holds are unchanged.
    assert model.get_layer("block").conv1.kernel.shape[-1] == 16


def test_custom_block_inside_nested_model():
    inner = _custom_model()
    x = keras.Input((8, 8, 3))
    y = L.Dense(4, name="outer_head")(inner(x))
    model = keras.Model(x, y)
    groups = keras_neuronprune.channel_groups(model)
    assert any(m.startswith(f"{inner.name}/block/") for m in _members(groups))
    assert_thin_matches(model, random_keep(groups, rng=1), groups=groups)


def test_untraceable_custom_layer_is_a_barrier_naming_it():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, name="p")(x)
    y = _Untraceable(name="opaque")(y)
    model = keras.Model(x, L.Conv2D(4, 1, name="c")(y))
    groups = keras_neuronprune.channel_groups(model)
    group = next(g for g in groups if g.name == "p")
    assert not group.prunable
    assert "'opaque'" in group.reason and "could not be traced" in group.reason


def test_custom_block_cost_counts_inner_layers():
    model = _custom_model()
    cost = keras_neuronprune.count_cost(model)
    names = {row.name for row in cost.layers}
    assert "block/conv1" in names
    conv1 = model.get_layer("block").conv1
    per_call = 2 * 8 * 8 * 3 * 3 * 8 * 16 + 8 * 8 * 16  # MACs x2 + bias
    rows = [r for r in cost.layers if r.name == "block/conv1"]
    assert len(rows) == 2  # the block is called twice
    assert sum(r.flops for r in rows) == 2 * per_call
    assert cost.params == model.count_params()
    assert conv1.kernel.shape == (3, 3, 8, 16)


RAW_OPS = {
    "pad_spatial": lambda y: ops.pad(y, ((0, 0), (1, 1), (2, 0), (0, 0))),
    "split_concat": lambda y: ops.concatenate(
        [ops.relu(a) for a in ops.split(y, 2, axis=-1)][::-1], axis=-1
    ),
    "split_indices": lambda y: ops.split(y, [2, 5], axis=-1)[1] + 0.0,
    "reshape": lambda y: ops.reshape(y, (-1, 36, 8)),
    "transpose": lambda y: ops.transpose(y, (0, 2, 1, 3)),
    "get_item": lambda y: y[:, 1:, ::2],
    "mean_keepdims": lambda y: y * ops.mean(y, axis=(1, 2), keepdims=True),
    "expand_squeeze": lambda y: ops.squeeze(ops.expand_dims(y, 1), 1),
    "clip": lambda y: ops.clip(y, -1.0, 1.0),
}


@pytest.mark.parametrize("name", sorted(RAW_OPS))
def test_raw_ops_keeping_channels_are_exact(name):
    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, padding="same", name="p")(x)
    y = RAW_OPS[name](y)
    y = L.Dense(4, name="c")(y)
    model = randomize_weights(keras.Model(x, y))
    groups = keras_neuronprune.channel_groups(model)
    assert any(g.prunable and "p" in g.layers for g in groups), [
        g.reason for g in groups
    ]
    assert_thin_matches(
        model, random_keep(groups, rng=0), groups=groups, check_save=False
    )


def _lambda_model():
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, name="a")(x)
    y = L.Lambda(lambda t: t * 2.0, name="lam")(y)
    y = L.Conv2D(8, 3, name="b")(y)
    y = L.ReLU()(y)
    y = L.Conv2D(8, 3, name="c")(y)
    y = L.GlobalAveragePooling2D()(y)
    return keras.Model(x, L.Dense(3, name="out")(y))


def _fit_and_strip(pruned, x, y):
    pruned.compile(optimizer="sgd", loss="mse")
    pruned.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[keras_neuronprune.callbacks.UpdatePruning()],
    )
    return keras_neuronprune.strip_pruning(pruned)


def test_lambda_blocks_only_its_own_channels():
    model = _lambda_model()
    groups = {g.name: g for g in keras_neuronprune.channel_groups(model)}
    assert not groups["a"].prunable and "lam" in groups["a"].reason
    assert groups["b"].prunable
    pruned = keras_neuronprune.prune_structured(
        model, criterion="l1", pruning_ratio=0.5
    )
    rng = np.random.default_rng(0)
    final = _fit_and_strip(
        pruned,
        rng.standard_normal((8, 8, 8, 3)).astype("float32"),
        np.zeros((8, 3), "float32"),
    )
    assert final.get_layer("b").filters == 4
    assert final.get_layer("a").filters == 8


def _dict_model():
    image = keras.Input((None, None, 3), name="image")
    extra = keras.Input((5,), name="extra")
    y = L.Conv2D(8, 3, padding="same", name="p")(image)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU()(y)
    y = L.Conv2D(8, 3, padding="same", name="q")(y)
    y = L.GlobalAveragePooling2D()(y)
    y = L.Concatenate()([y, L.Dense(4, name="e")(extra)])
    out = L.Dense(2, name="out")(y)
    return keras.Model({"image": image, "extra": extra}, out)


def test_dict_and_dynamic_inputs_prune_fit_strip():
    model = _dict_model()
    cost = keras_neuronprune.count_cost(model, input_shape=[(5,), (8, 8, 3)])
    assert cost.flops > 0
    with pytest.raises(ValueError, match="input_shape"):
        keras_neuronprune.prune_structured(
            model, criterion="l1", pruning_ratio=0.5
        )
    pruned = keras_neuronprune.prune_structured(
        model,
        criterion="l1",
        flops_pruning_ratio=0.4,
        input_shape=[(5,), (8, 8, 3)],
    )
    rng = np.random.default_rng(0)
    x = {
        "image": rng.standard_normal((8, 8, 8, 3)).astype("float32"),
        "extra": rng.standard_normal((8, 5)).astype("float32"),
    }
    final = _fit_and_strip(pruned, x, np.zeros((8, 2), "float32"))
    assert final.get_layer("p").filters < 8
    after = keras_neuronprune.count_cost(final, input_shape=[(5,), (8, 8, 3)])
    assert after.flops < cost.flops
