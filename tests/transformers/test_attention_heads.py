"""Attention heads and FFN widths of hand-built functional transformers.

Every thinned model is checked against `zero_removed_inputs` (the masked
reference) and, for heads, against an explicit Keras reference: the
original layer with the output-projection rows of the removed heads set
to zero.
"""

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune.criteria import get as get_criterion
from keras_neuronprune.criteria.base_criterion import ScoringContext
from keras_neuronprune.graph import register_layer_handler
from keras_neuronprune.graph.attention_handlers import MultiHeadAttentionHandler
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import zero_removed_inputs

L = keras.layers
RNG = np.random.default_rng(0)


def _block(x, name, dim=16, heads=4, ffn=32, key_dim=None):
    attention = L.MultiHeadAttention(
        heads, key_dim or dim // heads, name=f"{name}_mha"
    )(x, x)
    x = L.Add(name=f"{name}_add1")([x, attention])
    x = L.LayerNormalization(name=f"{name}_ln1")(x)
    h = L.Dense(ffn, activation="gelu", name=f"{name}_ff1")(x)
    h = L.Dropout(0.1, name=f"{name}_drop")(h)
    h = L.Dense(dim, name=f"{name}_ff2")(h)
    x = L.Add(name=f"{name}_add2")([x, h])
    return L.LayerNormalization(name=f"{name}_ln2")(x)


def _transformer(blocks=2, seq=6, dim=16, heads=4, ffn=32):
    inputs = keras.Input((seq, 5))
    x = L.Dense(dim, name="embed")(inputs)
    for i in range(blocks):
        x = _block(x, f"b{i}", dim, heads, ffn)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def _x(model, batch=2):
    shape = [batch] + [int(d) for d in model.inputs[0].shape[1:]]
    return RNG.standard_normal(shape).astype("float32")


def _half(groups):
    return {g.name: np.arange(g.size // 2) for g in groups if g.prunable}


def _assert_exact(model, keep, allow_inexact=False):
    thin, report = thin_model(model, keep, allow_inexact=allow_inexact)
    ref = zero_removed_inputs(model, keep, allow_inexact=allow_inexact)
    x = _x(model)
    expected = keras.ops.convert_to_numpy(ref(x))
    actual = keras.ops.convert_to_numpy(thin(x))
    original = keras.ops.convert_to_numpy(model(x))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, atol=1e-5 * scale)
    # The keep set changed the function: the check is not vacuous.
    assert np.abs(original - expected).max() > 1e-4
    return thin, report


@pytest.fixture
def head_dim_mode():
    register_layer_handler(
        L.MultiHeadAttention, MultiHeadAttentionHandler(prune="head_dim")
    )
    yield
    register_layer_handler(L.MultiHeadAttention, MultiHeadAttentionHandler())


def test_heads_and_ffn_are_exact_groups_residual_is_inexact():
    model = _transformer()
    groups = {g.name: g for g in knp.channel_groups(model)}
    heads = groups["b0_mha/heads"]
    assert (heads.size, heads.prunable, heads.exact) == (4, True, True)
    (member,) = heads.members
    assert (member.layer, member.role) == ("b0_mha", "internal")
    ffn = groups["b1_ff1"]
    assert (ffn.size, ffn.prunable, ffn.exact) == (32, True, True)
    residual = groups["embed"]
    assert not residual.prunable and not residual.exact
    assert "allow_inexact=True" in residual.reason
    assert {"b0_mha", "b1_mha", "b1_ff2"} <= set(residual.layers)
    allowed = {g.name: g for g in knp.channel_groups(model, True)}
    assert allowed["embed"].prunable and not allowed["embed"].exact


def test_half_heads_and_half_ffn_thin_matches_zeroed_model():
    model = _transformer()
    keep = _half(knp.channel_groups(model))
    assert set(keep) == {"b0_mha/heads", "b0_ff1", "b1_mha/heads", "b1_ff1"}
    thin, report = _assert_exact(model, keep)
    mha = thin.get_layer("b0_mha")
    assert mha.num_heads == 2 and mha.key_dim == 4
    assert tuple(mha.query_dense.kernel.shape) == (16, 2, 4)
    assert tuple(mha.output_dense.kernel.shape) == (2, 4, 16)
    assert thin.get_layer("b0_ff1").units == 16
    # Attention and FFN dominate: half of them is close to half the FLOPs.
    assert report.flops_after / report.flops_before < 0.6
    assert report.flops_after == knp.count_cost(thin).flops


def test_removed_heads_match_explicit_keras_reference():
    model = _transformer(blocks=1)
    keep = {"b0_mha/heads": np.array([1, 3])}
    thin, _ = _assert_exact(model, keep)
    # Reference: the original layer with heads 0 and 2 silenced by zeroing
    # the output-projection rows that read them.
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    layer = reference.get_layer("b0_mha")
    kernel = layer.output_dense.kernel.numpy()
    kernel[[0, 2]] = 0.0
    layer.output_dense.kernel.assign(kernel)
    x = _x(model)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(thin(x)),
        keras.ops.convert_to_numpy(reference(x)),
        atol=1e-5,
    )
    kept = thin.get_layer("b0_mha").query_dense.kernel.numpy()
    original = model.get_layer("b0_mha").query_dense.kernel.numpy()
    np.testing.assert_array_equal(kept, original[:, [1, 3]])


def test_residual_stream_prunes_only_with_allow_inexact():
    model = _transformer(blocks=1)
    with pytest.raises(ValueError, match="allow_inexact=True"):
        thin_model(model, {"embed": np.arange(8)})
    thin, _ = thin_model(model, {"embed": np.arange(8)}, allow_inexact=True)
    mha = thin.get_layer("b0_mha")
    assert tuple(mha.query_dense.kernel.shape) == (8, 4, 4)
    assert tuple(mha.output_dense.kernel.shape) == (4, 4, 8)
    assert thin(_x(model)).shape == (2, 3)


def test_head_dim_mode_keeps_equal_dims_per_head(head_dim_mode):
    model = _transformer(blocks=1)
    groups = {g.name: g for g in knp.channel_groups(model)}
    qk, v = groups["b0_mha/qk_dims"], groups["b0_mha/v_dims"]
    assert qk.size == v.size == 16 and qk.prunable and v.prunable
    # Keep dims 0 and 2 of every head (head h owns 4h..4h+3).
    per_head = np.array([0, 2])
    keep = {
        "b0_mha/qk_dims": np.concatenate([per_head + 4 * h for h in range(4)]),
        "b0_mha/v_dims": np.concatenate([[4 * h + 3] for h in range(4)]),
    }
    thin, _ = _assert_exact(model, keep)
    mha = thin.get_layer("b0_mha")
    assert (mha.num_heads, mha.key_dim, mha.value_dim) == (4, 2, 1)
    uneven = {"b0_mha/qk_dims": np.arange(8)}  # heads 0-1 only
    with pytest.raises(ValueError, match="unequal"):
        thin_model(model, uneven)


def test_cross_attention_and_projected_inputs():
    q_in, kv_in = keras.Input((5, 7)), keras.Input((9, 6))
    q = L.Dense(12, name="q_proj")(q_in)
    kv = L.Dense(10, name="kv_proj")(kv_in)
    y = L.MultiHeadAttention(3, 4, value_dim=5, name="cross")(q, kv)
    y = L.Dense(8, name="after")(y)
    model = keras.Model([q_in, kv_in], y)
    groups = {g.name: g for g in knp.channel_groups(model)}
    assert groups["q_proj"].prunable and groups["kv_proj"].prunable
    assert groups["cross"].prunable  # output_shape=None: query width
    keep = {
        "q_proj": np.arange(6),
        "kv_proj": np.array([0, 3, 5, 9]),
        "cross/heads": np.array([0, 2]),
        "cross": np.arange(1, 12, 2),
    }
    thin, _ = thin_model(model, keep)
    ref = zero_removed_inputs(model, keep)
    x = [RNG.standard_normal((2, 5, 7)), RNG.standard_normal((2, 9, 6))]
    x = [a.astype("float32") for a in x]
    np.testing.assert_allclose(thin(x), ref(x), atol=1e-5)
    cross = thin.get_layer("cross")
    assert tuple(cross.key_dense.kernel.shape) == (4, 2, 4)
    assert tuple(cross.output_dense.kernel.shape) == (2, 5, 6)


def test_shared_attention_image_axes_no_bias():
    inputs = keras.Input((4, 4, 6))
    x = L.Conv2D(8, 1, name="stem")(inputs)
    mha = L.MultiHeadAttention(
        4, 3, attention_axes=(1, 2), use_bias=False, output_shape=8, name="sa"
    )
    x = L.Add(name="res1")([x, mha(x, x)])
    x = L.Add(name="res2")([x, mha(x, x)])  # the same layer, called twice
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    groups = {g.name: g for g in knp.channel_groups(model)}
    assert [n for n in groups if n.endswith("/heads")] == ["sa/heads"]
    assert groups["stem"].prunable and groups["stem"].exact
    keep = {"sa/heads": np.array([0, 3]), "stem": np.arange(5)}
    thin, _ = _assert_exact(model, keep)
    assert thin.get_layer("sa").get_config()["output_shape"] == (5,)


def test_l1_scores_whole_heads():
    model = _transformer(blocks=1)
    groups = knp.channel_groups(model)
    layer = model.get_layer("b0_mha")

    def norms(dense):
        return np.abs(dense.kernel.numpy())

    expected = sum(
        norms(d).sum(axis=(0, 2))
        for d in (layer.query_dense, layer.key_dense, layer.value_dense)
    )
    scores = get_criterion("l1").score(ScoringContext(model, groups))
    np.testing.assert_allclose(scores["b0_mha/heads"], expected, rtol=1e-6)
    with_out = knp.criteria.L1Norm(include_consumers=True).score(
        ScoringContext(model, groups)
    )
    np.testing.assert_allclose(
        with_out["b0_mha/heads"],
        expected + norms(layer.output_dense).sum(axis=(1, 2)),
        rtol=1e-6,
    )
    l2 = get_criterion("l2").score(ScoringContext(model, groups))
    assert l2["b0_mha/heads"].shape == (4,)


def test_unsupported_calls_are_barriers_with_reasons():
    x_in = keras.Input((6, 8))
    x = L.Dense(8, name="proj")(x_in)
    out, _ = L.MultiHeadAttention(2, 4, name="scores")(
        x, x, return_attention_scores=True
    )
    groups = knp.channel_groups(keras.Model(x_in, L.Dense(2)(out)))
    blocked = {g.name: g for g in groups}["proj"]
    assert not blocked.prunable and "attention scores" in blocked.reason

    class Talking(L.MultiHeadAttention):
        pass

    y = Talking(2, 4, name="talking")(x, x)
    groups = knp.channel_groups(keras.Model(x_in, L.Dense(2)(y)))
    blocked = {g.name: g for g in groups}["proj"]
    assert "trusted_classes" in blocked.reason
    with pytest.raises(ValueError, match="`prune` must be one of"):
        MultiHeadAttentionHandler(prune="rows")


def test_thin_transformer_saves_and_reloads(tmp_path):
    model = _transformer(blocks=1)
    thin, _ = thin_model(model, _half(knp.channel_groups(model)))
    path = str(tmp_path / "thin.keras")
    thin.save(path)
    loaded = keras.saving.load_model(path)
    x = _x(model)
    np.testing.assert_allclose(loaded(x), thin(x), atol=1e-6)
    config = thin.get_layer("b0_mha").get_config()
    clone = L.MultiHeadAttention.from_config(config)
    assert clone.get_config() == config


def test_prune_fit_strip_then_heads_one_shot_then_tflite(tmp_path):
    model = _transformer(blocks=1)
    heads = [g.name for g in knp.channel_groups(model) if "/heads" in g.name]
    # Heads are masked during training (MaskedMultiHeadAttention) and
    # pruned with the rest of the model.
    warned = knp.prune_structured(model, pruning_ratio=0.5, criterion="l1")
    assert set(heads) <= {g.name for g in warned.controller.groups}
    pruned = knp.prune_structured(
        model, pruning_ratio=0.5, criterion="l1", ignored_layers=heads
    )
    pruned.compile("adam", "mse")
    x = _x(model, batch=8)
    y = RNG.standard_normal((8, 3)).astype("float32")
    pruned.fit(
        x, y, epochs=1, batch_size=4, verbose=0,
        callbacks=[knp.callbacks.UpdatePruning()],
    )  # fmt: skip
    stripped = knp.strip_pruning(pruned)
    assert stripped.get_layer("b0_ff1").units == 16
    groups = knp.channel_groups(stripped)
    scores = get_criterion("l1").score(ScoringContext(stripped, groups))
    keep = {n: np.sort(np.argsort(scores[n])[-2:]) for n in heads}
    thin, _ = _assert_exact(stripped, keep)
    assert thin.get_layer("b0_mha").num_heads == 2
    result = knp.export.tflite(
        thin, str(tmp_path / "thin.tflite"), parity_data=x[:2], verbose=0
    )
    assert result.parity.passed
