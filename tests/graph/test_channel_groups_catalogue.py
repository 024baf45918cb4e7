"""Structure of the channel groups, one construct at a time."""

import keras
import numpy as np
import pytest

import keras_neuronprune
from keras_neuronprune.testing import CATALOGUE
from keras_neuronprune.testing import model_catalogue as mc


def _param_id(value):
    return getattr(value, "__name__", repr(value)[:20])


L = keras.layers


def _members(groups, layer, role=None, input_index=None):
    """All `(group, member)` pairs of `layer` (optionally one role/input)."""
    found = []
    for g in groups:
        for m in g.members:
            if m.layer != layer:
                continue
            if role is not None and m.role != role:
                continue
            if input_index is not None and m.input_index != input_index:
                continue
            found.append((g, m))
    return found


def _group(groups, name):
    matches = [g for g in groups if g.name == name]
    assert len(matches) == 1, f"no group {name!r} in {[g.name for g in groups]}"
    return matches[0]


def _group_at(groups, layer, role="output", input_index=None):
    """The single group of a layer's output (or input)."""
    found = {id(g): g for g, _ in _members(groups, layer, role, input_index)}
    assert len(found) == 1, (
        f"expected one group at {layer!r} {role}, got "
        f"{[g.name for g in found.values()]}"
    )
    return next(iter(found.values()))


def _positions(group, layer, role, input_index=None):
    pairs = [
        m for g, m in _members([group], layer, role, input_index) if g is group
    ]
    assert len(pairs) >= 1, f"{layer!r} {role} is not a member of {group}"
    return np.asarray(pairs[0].channels).reshape(group.size, -1)


# ----------------------------------------------------------------------
# Invariants on every catalogue model.


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_groups_are_well_formed(name):
    model = CATALOGUE[name]()
    groups = keras_neuronprune.channel_groups(model)
    names = [g.name for g in groups]
    assert len(names) == len(set(names))
    assert any(g.prunable for g in groups), [g.reason for g in groups]
    seen = {}
    for g in groups:
        assert isinstance(g.size, int) and g.size >= 1
        assert g.layers == sorted({m.layer for m in g.members})
        if g.prunable:
            assert g.reason is None or not g.exact
            assert any(m.kind == "producer" for m in g.members), g
        else:
            assert isinstance(g.reason, str) and g.reason
        for m in g.members:
            assert m.role in ("input", "output")
            assert m.kind in ("producer", "consumer", "channelwise")
            channels = np.asarray(m.channels)
            assert channels.shape[0] == g.size
            assert np.issubdtype(channels.dtype, np.integer)
            assert channels.min() >= 0
            key = (m.layer, m.role, m.input_index)
            flat = channels.reshape(-1).tolist()
            # A channel position belongs to exactly one group.
            assert len(flat) == len(set(flat)), (g.name, m)
            for position in flat:
                owner = seen.setdefault((key, position), g.name)
                assert owner == g.name, (
                    f"{key} position {position} in groups {owner!r} and "
                    f"{g.name!r}"
                )
        for layer, chunks in g.partitions:
            chunks = np.asarray(chunks)
            assert chunks.shape == (g.size,)
            _, counts = np.unique(chunks, return_counts=True)
            assert len(set(counts.tolist())) == 1, (layer, chunks)


def test_groups_are_deterministic():
    model = mc.residual_network()
    a = keras_neuronprune.channel_groups(model)
    b = keras_neuronprune.channel_groups(model)
    assert [(g.name, g.size, g.prunable) for g in a] == [
        (g.name, g.size, g.prunable) for g in b
    ]


# ----------------------------------------------------------------------
# Producers, consumers, channelwise layers.


def test_conv_chain_groups_and_kinds():
    groups = keras_neuronprune.channel_groups(mc.conv2d())
    p = _group_at(groups, "p")
    assert p.size == 8 and p.prunable and p.exact and p.reason is None
    assert {"p", "bn", "relu", "mid"} <= set(p.layers)
    kinds = {(m.layer, m.role): m.kind for m in p.members}
    assert kinds[("p", "output")] == "producer"
    assert kinds[("bn", "output")] == "channelwise"
    assert kinds[("mid", "input")] == "consumer"
    np.testing.assert_array_equal(
        _positions(p, "mid", "input")[:, 0], np.arange(8)
    )
    mid = _group_at(groups, "mid")
    assert mid.size == 6 and mid.prunable
    assert {"mid", "bn2", "swish", "c"} <= set(mid.layers)


def test_model_input_and_output_groups_are_blocked():
    groups = keras_neuronprune.channel_groups(mc.conv2d())
    inp = _group_at(groups, "p", role="input")
    assert inp.size == 3 and not inp.prunable
    assert "input" in inp.reason
    out = _group_at(groups, "c")
    assert out.size == 4 and not out.prunable
    assert "output" in out.reason


@pytest.mark.parametrize(
    "builder,hidden",
    [
        (mc.conv1d, ["p", "mid"]),
        (mc.conv3d, ["p"]),
        (mc.conv1d_transpose, ["p", "mid"]),
        (mc.conv2d_transpose, ["p", "mid"]),
        (mc.conv3d_transpose, ["p"]),
        (mc.dense_2d, ["p", "mid"]),
        (mc.dense_nd, ["p", "mid"]),
        (mc.einsum_dense, ["p"]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_producer_groups_are_prunable(builder, hidden):
    model = builder()
    groups = keras_neuronprune.channel_groups(model)
    for name in hidden:
        g = _group_at(groups, name)
        assert g.prunable and g.exact, g
        assert g.size == model.get_layer(name).output.shape[-1]
        assert any(m.layer == name and m.kind == "producer" for m in g.members)
        assert any(m.kind == "consumer" for m in g.members)


def test_depthwise_multiplier_repeats_channels():
    groups = keras_neuronprune.channel_groups(mc.depthwise_conv2d_multiplier())
    p = _group_at(groups, "p")
    assert p.size == 6 and p.prunable
    dw = _positions(p, "dw", "output")
    assert dw.shape == (6, 2)
    np.testing.assert_array_equal(
        np.sort(dw, axis=1), np.arange(12).reshape(6, 2)
    )
    np.testing.assert_array_equal(
        np.sort(_positions(p, "c", "input"), axis=1), np.sort(dw, axis=1)
    )
    assert {"bn", "relu"} <= set(p.layers)


def test_depthwise_conv1d_multiplier_three():
    groups = keras_neuronprune.channel_groups(mc.depthwise_conv1d())
    p = _group_at(groups, "p")
    assert p.size == 8 and p.prunable
    assert {"dw", "relu", "dw3"} <= set(p.layers)
    dw3 = np.sort(_positions(p, "dw3", "output"), axis=1)
    np.testing.assert_array_equal(dw3, np.arange(24).reshape(8, 3))


@pytest.mark.parametrize(
    "builder",
    [mc.separable_conv1d, mc.separable_conv2d],
    ids=_param_id,
)
def test_separable_conv_consumes_and_produces(builder):
    groups = keras_neuronprune.channel_groups(builder())
    p = _group_at(groups, "p")
    assert p.size == 8 and p.prunable
    kinds = {(m.layer, m.role): m.kind for m in p.members}
    assert kinds[("sep", "input")] == "consumer"
    sep = _group_at(groups, "sep")
    assert sep.size == 10 and sep.prunable
    assert kinds.get(("sep", "output")) is None


@pytest.mark.parametrize(
    "builder,layer,in_size,out_size,n_groups",
    [
        (mc.grouped_conv1d, "g", 8, 8, 2),
        (mc.grouped_conv2d, "g", 8, 12, 4),
        (mc.grouped_conv3d, "g", 4, 6, 2),
    ],
    ids=["1d", "2d", "3d"],
)
def test_grouped_conv_partitions(builder, layer, in_size, out_size, n_groups):
    groups = keras_neuronprune.channel_groups(builder())
    src = _group_at(groups, layer, role="input")
    assert src.size == in_size and src.prunable
    parts = dict((name, np.asarray(c)) for name, c in src.partitions)
    assert layer in parts
    positions = _positions(src, layer, "input")[:, 0]
    np.testing.assert_array_equal(
        parts[layer], positions // (in_size // n_groups)
    )
    out = _group_at(groups, layer)
    assert out.size == out_size and out.prunable
    parts = dict((name, np.asarray(c)) for name, c in out.partitions)
    positions = _positions(out, layer, "output")[:, 0]
    np.testing.assert_array_equal(
        parts[layer], positions // (out_size // n_groups)
    )


# ----------------------------------------------------------------------
# Merges, concatenation, reshapes.


def test_merges_couple_all_inputs():
    groups = keras_neuronprune.channel_groups(mc.merges())
    g = _group_at(groups, "pa")
    assert g is _group_at(groups, "pb") is _group_at(groups, "pc")
    assert g.prunable and g.size == 8
    assert {"add", "sub", "mul", "avg", "max", "min", "c"} <= set(g.layers)


@pytest.mark.parametrize(
    "builder",
    [mc.squeeze_excitation, mc.squeeze_excitation_reshape],
    ids=["keepdims", "reshape"],
)
def test_squeeze_excitation_broadcast_couples(builder):
    groups = keras_neuronprune.channel_groups(builder())
    g = _group_at(groups, "p")
    assert g is _group_at(groups, "se_expand")
    assert g.prunable and g.size == 8
    assert {"squeeze", "excite", "c"} <= set(g.layers)
    reduce = _group_at(groups, "se_reduce")
    assert reduce is not g and reduce.prunable


def test_concatenate_offsets():
    groups = keras_neuronprune.channel_groups(mc.concatenate())
    a, b = _group_at(groups, "pa"), _group_at(groups, "pb")
    assert a is not b and a.prunable and b.prunable
    for layer, role in (("concat", "output"), ("bn", "output"), ("c", "input")):
        np.testing.assert_array_equal(
            _positions(a, layer, role)[:, 0], np.arange(4)
        )
        np.testing.assert_array_equal(
            _positions(b, layer, role)[:, 0], np.arange(4, 10)
        )


def test_concatenate_with_itself_repeats_channels():
    groups = keras_neuronprune.channel_groups(mc.concatenate_self())
    a = _group_at(groups, "pa")
    assert a.prunable and a.size == 4
    at_concat = np.sort(_positions(a, "concat", "output"), axis=1)
    np.testing.assert_array_equal(at_concat, [[0, 4], [1, 5], [2, 6], [3, 7]])
    np.testing.assert_array_equal(
        np.sort(_positions(a, "c", "input"), axis=1), at_concat
    )


def test_concatenate_dense_block_offsets():
    groups = keras_neuronprune.channel_groups(mc.concatenate_dense_block())
    stem = _group_at(groups, "stem")
    for i in range(3):
        np.testing.assert_array_equal(
            _positions(stem, f"concat{i}", "output")[:, 0], np.arange(4)
        )
        grow = _group_at(groups, f"grow{i}")
        assert grow.prunable and grow.size == 3
        start = 4 + 3 * i
        np.testing.assert_array_equal(
            _positions(grow, f"concat{i}", "output")[:, 0],
            np.arange(start, start + 3),
        )
        np.testing.assert_array_equal(
            _positions(grow, "c", "input")[:, 0], np.arange(start, start + 3)
        )


def test_concatenate_other_axis_couples_inputs():
    groups = keras_neuronprune.channel_groups(mc.concatenate_other_axis())
    g = _group_at(groups, "pa")
    assert g is _group_at(groups, "pb") and g.prunable and g.size == 6


def test_flatten_tiles_channels():
    groups = keras_neuronprune.channel_groups(mc.flatten_dense())
    p = _group_at(groups, "p")
    assert p.prunable and p.size == 4
    flat = np.sort(_positions(p, "flatten", "output"), axis=1)
    # channels_last flattening: position = spatial_index * C + channel.
    expected = np.arange(4)[:, None] + 4 * np.arange(9)[None, :]
    np.testing.assert_array_equal(flat, expected)
    np.testing.assert_array_equal(
        np.sort(_positions(p, "mid", "input"), axis=1), expected
    )
    assert _group_at(groups, "mid").prunable


def test_rescaling_normalization_are_channelwise():
    for builder in (mc.rescaling_normalization, mc.rescaling_per_channel):
        groups = keras_neuronprune.channel_groups(builder())
        p = _group_at(groups, "p")
        assert p.prunable and "rescale" in p.layers


def test_activations_dropout_pooling_padding_are_channelwise():
    cases = {
        mc.activations: [
            "prelu", "leaky", "elu", "relu", "gelu", "softmax_spatial",
            "prelu_full",
        ],
        mc.regularization: [
            "dropout", "spatial_dropout", "noise", "gdropout", "adropout",
        ],
        mc.pooling_1d: ["maxpool", "avgpool", "gap_keep", "mul", "gmp"],
        mc.pooling_2d: ["maxpool", "avgpool", "gmp_keep", "add"],
        mc.pooling_3d: ["maxpool", "avgpool", "gap_keep", "sub", "gmp"],
        mc.padding_cropping_upsampling_1d: ["pad", "crop", "up"],
        mc.padding_cropping_upsampling_2d: ["pad", "crop", "up"],
        mc.padding_cropping_upsampling_3d: ["pad", "crop", "up"],
    }  # fmt: skip
    for builder, layers in cases.items():
        groups = keras_neuronprune.channel_groups(builder())
        p = _group_at(groups, "p")
        assert p.prunable and p.exact, (builder.__name__, p)
        missing = set(layers) - set(p.layers)
        assert not missing, (builder.__name__, missing)


# ----------------------------------------------------------------------
# Nested models, Sequential, shared layers.


def test_nested_model_members_use_paths():
    groups = keras_neuronprune.channel_groups(mc.nested_model())
    p = _group_at(groups, "p")
    assert p.prunable
    assert {"inner/add", "inner/expand", "inner/project", "relu"} <= set(
        p.layers
    )
    hidden = _group_at(groups, "inner/expand")
    assert hidden.prunable and hidden.size == 16
    assert "inner/bn" in hidden.layers


def test_nested_model_called_twice_couples_call_sites():
    groups = keras_neuronprune.channel_groups(mc.nested_model_called_twice())
    p = _group_at(groups, "p")
    assert p.prunable and "relu" in p.layers
    hidden = _group_at(groups, "inner/expand")
    assert hidden.prunable and hidden.size == 16


def test_sequential_and_nested_sequential():
    groups = keras_neuronprune.channel_groups(mc.sequential())
    assert _group_at(groups, "p").prunable
    assert _group_at(groups, "fc").prunable
    groups = keras_neuronprune.channel_groups(mc.nested_sequential())
    assert _group_at(groups, "outer/p").prunable
    block = _group_at(groups, "outer/block/expand")
    assert block.prunable and block.size == 12


def test_shared_layer_couples_call_sites():
    groups = keras_neuronprune.channel_groups(mc.shared_layers())
    a = _group_at(groups, "pa")
    assert a is _group_at(groups, "pb"), "shared conv must couple its inputs"
    assert a.prunable and a.size == 4
    shared = _group_at(groups, "shared")
    assert shared.prunable and {"add", "relu", "r2"} <= set(shared.layers)
    dense = _group_at(groups, "shared_dense")
    assert dense.prunable and dense.size == 6
    at_concat = np.sort(_positions(dense, "concat", "output"), axis=1)
    np.testing.assert_array_equal(at_concat, np.arange(12).reshape(2, 6).T)


def test_multiple_inputs_outputs():
    groups = keras_neuronprune.channel_groups(mc.multiple_inputs_outputs())
    for name in ("pa", "pb", "mid"):
        assert _group_at(groups, name).prunable
    for name in ("out1", "out2"):
        g = _group_at(groups, name)
        assert not g.prunable and "output" in g.reason
    assert not _group_at(groups, "pb", role="input").prunable


def test_subclass_of_known_layer_uses_its_handler():
    class MyConv(L.Conv2D):
        pass

    x = keras.Input((6, 6, 3))
    y = L.Conv2D(8, 3, name="p")(x)
    y = MyConv(4, 1, name="mine")(y)
    y = L.Conv2D(2, 1, name="c")(y)
    groups = keras_neuronprune.channel_groups(keras.Model(x, y))
    assert _group_at(groups, "p").prunable
    assert _group_at(groups, "mine").prunable
