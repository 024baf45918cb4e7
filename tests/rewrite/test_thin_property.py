"""Property: on random functional graphs, thin == zero-masked reference.

Hypothesis draws a random stack of blocks (convolutions, grouped and
depthwise convolutions, residual additions, concatenations, squeeze-
excitation, pooling, shared layers, nested models, Dense on 4-D tensors)
and a head (global pooling or Flatten + Dense); a random keep set removes
30-60% of every prunable group; the thin model must match the reference.

Set KN_HYPOTHESIS_SHRINK=1 to shrink a failing example to a minimal graph,
and KN_HYPOTHESIS_EXAMPLES=n to draw n graphs instead of 30 (bug hunting).
"""

import os

import keras
import numpy as np
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_neuronprune
from keras_neuronprune.testing import assert_thin_matches
from keras_neuronprune.testing import random_keep
from keras_neuronprune.testing import randomize_weights

L = keras.layers

_PHASES = (
    [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
    if os.environ.get("KN_HYPOTHESIS_SHRINK")
    else [Phase.explicit, Phase.reuse, Phase.generate]
)
_EXAMPLES = int(os.environ.get("KN_HYPOTHESIS_EXAMPLES", "30"))
_SETTINGS = dict(
    derandomize=True,
    deadline=None,
    database=None,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_BLOCKS = st.one_of(
    st.tuples(
        st.just("conv"),
        st.integers(4, 12),
        st.sampled_from([1, 3]),
        st.sampled_from([1, 2]),
    ),
    st.tuples(st.just("bn")),
    st.tuples(
        st.just("act"),
        st.sampled_from(["relu", "swish", "prelu", "leaky", "elu", "sigmoid"]),
    ),
    st.tuples(st.just("dropout")),
    st.tuples(st.just("depthwise"), st.sampled_from([1, 2])),
    st.tuples(st.just("separable"), st.integers(4, 10)),
    st.tuples(st.just("residual"), st.integers(4, 16)),
    st.tuples(st.just("concat"), st.integers(2, 6)),
    st.tuples(st.just("concat_self")),
    st.tuples(st.just("se"), st.booleans()),
    st.tuples(st.just("pool"), st.sampled_from(["max", "avg"])),
    st.tuples(st.just("gate")),
    st.tuples(st.just("pad_crop")),
    st.tuples(st.just("shared")),
    st.tuples(st.just("nested"), st.integers(4, 12)),
    st.tuples(st.just("dense"), st.integers(4, 10)),
    st.tuples(st.just("merge"), st.sampled_from(["sub", "max", "min", "avg"])),
)

_SPECS = st.tuples(
    st.integers(4, 10),  # stem filters
    st.lists(_BLOCKS, min_size=1, max_size=7),
    st.sampled_from(["gap", "gmp", "flatten", "conv"]),
    st.integers(0, 2**16),  # keep-set seed
)


def _channels(t):
    return int(t.shape[-1])


def _nested_block(channels, hidden):
    x = keras.Input((None, None, channels))
    y = L.Conv2D(hidden, 1, activation="relu")(x)
    y = L.Conv2D(channels, 1)(y)
    y = L.Add()([x, y])
    return keras.Model(x, y)


def _apply(block, y):
    kind, args = block[0], block[1:]
    c = _channels(y)
    if kind == "conv":
        filters, size, groups = args
        if c % groups or filters % groups:
            groups = 1
        return L.Conv2D(filters, size, padding="same", groups=groups)(y)
    if kind == "bn":
        return L.BatchNormalization()(y)
    if kind == "act":
        (name,) = args
        if name == "prelu":
            return L.PReLU(shared_axes=[1, 2])(y)
        if name == "leaky":
            return L.LeakyReLU(0.1)(y)
        if name == "elu":
            return L.ELU()(y)
        return L.Activation(name)(y)
    if kind == "dropout":
        return L.SpatialDropout2D(0.3)(L.Dropout(0.2)(y))
    if kind == "depthwise":
        (multiplier,) = args
        if c * multiplier > 24:
            multiplier = 1
        return L.DepthwiseConv2D(
            3, padding="same", depth_multiplier=multiplier
        )(y)
    if kind == "separable":
        (filters,) = args
        return L.SeparableConv2D(filters, 3, padding="same")(y)
    if kind == "residual":
        (hidden,) = args
        z = L.Conv2D(hidden, 1, activation="relu")(y)
        z = L.BatchNormalization()(z)
        z = L.Conv2D(c, 3, padding="same")(z)
        return L.Add()([y, z])
    if kind == "concat":
        (filters,) = args
        z = L.Conv2D(filters, 3, padding="same", activation="relu")(y)
        return L.Concatenate()([y, z])
    if kind == "concat_self":
        if c > 12:
            return y
        return L.Concatenate()([y, L.ReLU()(y)])
    if kind == "se":
        (reshape,) = args
        if reshape:
            s = L.Reshape((1, 1, c))(L.GlobalAveragePooling2D()(y))
        else:
            s = L.GlobalAveragePooling2D(keepdims=True)(y)
        s = L.Conv2D(max(1, c // 2), 1, activation="relu")(s)
        s = L.Conv2D(c, 1, activation="sigmoid")(s)
        return L.Multiply()([y, s])
    if kind == "pool":
        (name,) = args
        if y.shape[1] >= 4:
            pool = L.MaxPooling2D if name == "max" else L.AveragePooling2D
            return pool(2)(y)
        return y
    if kind == "gate":
        z = L.Conv2D(c, 1, activation="sigmoid")(y)
        return L.Multiply()([y, z])
    if kind == "pad_crop":
        return L.Cropping2D(1)(L.ZeroPadding2D(1)(y))
    if kind == "shared":
        shared = L.Conv2D(c, 3, padding="same")
        return L.Add()([shared(y), shared(L.ReLU()(y))])
    if kind == "nested":
        (hidden,) = args
        return _nested_block(c, hidden)(y)
    if kind == "dense":
        (units,) = args
        return L.Dense(units, activation="relu")(y)
    if kind == "merge":
        (name,) = args
        z = L.Conv2D(c, 1)(y)
        layer = {
            "sub": L.Subtract,
            "max": L.Maximum,
            "min": L.Minimum,
            "avg": L.Average,
        }[name]
        return layer()([y, z])
    raise AssertionError(kind)


def _build(spec):
    stem, blocks, head, _ = spec
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(stem, 3, padding="same")(x)
    for block in blocks:
        y = _apply(block, y)
    if head == "gap":
        y = L.Dense(3)(L.GlobalAveragePooling2D()(y))
    elif head == "gmp":
        y = L.Dense(3)(L.GlobalMaxPooling2D(keepdims=True)(y))
    elif head == "flatten":
        y = L.Dense(3)(L.Flatten()(L.MaxPooling2D(2)(y)))
    else:
        y = L.Conv2D(3, 1)(y)
    return randomize_weights(keras.Model(x, y))


@settings(max_examples=_EXAMPLES, **_SETTINGS)
@given(spec=_SPECS)
def test_random_graph_thin_matches_reference(spec):
    keras.backend.clear_session()
    model = _build(spec)
    groups = keras_neuronprune.channel_groups(model)
    for g in groups:
        assert g.exact, f"{g} is inexact in an exact-only graph"
        if not g.prunable:
            assert "model input" in g.reason or "model output" in g.reason, (
                f"unexpected barrier: {g.reason}"
            )
    keep = random_keep(groups, rng=spec[3])
    assert keep, "nothing prunable"
    assert_thin_matches(
        model,
        keep,
        groups=groups,
        rng=spec[3],
        rtol=1e-5,
        scale_floor=1e-3,
        check_save=spec[3] % 3 == 0,
    )


@settings(max_examples=6, **_SETTINGS)
@given(
    blocks=st.lists(_BLOCKS, min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_random_graph_with_layer_norm_runs_when_inexact_allowed(blocks, seed):
    keras.backend.clear_session()
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same")(x)
    for block in blocks:
        y = _apply(block, y)
    y = L.LayerNormalization()(y)
    y = L.Conv2D(3, 1)(y)
    model = randomize_weights(keras.Model(x, y))
    groups = keras_neuronprune.channel_groups(model, allow_inexact=True)
    keep = random_keep(groups, rng=seed)
    assert keep
    thin, _ = assert_thin_matches(
        model,
        keep,
        allow_inexact=True,
        groups=groups,
        exact=False,
        check_save=False,
    )
    assert np.all(np.isfinite(thin.count_params()))
