"""Grouped-query attention (Gemma) and MiT / SegFormer (issue 11, item 3).

Grouped-query attention is checked on a small functional decoder built
from keras-hub's `CachedGemmaAttention` and a gated FFN of EinsumDense
layers, at fixed sizes (keras-hub's own decoder blocks build their causal
mask from `ops.shape`, which a symbolic trace on unknown sizes cannot run:
they stay barriers with that reason). MiT is the unmodified backbone.
"""

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import zero_removed_inputs

keras_hub = pytest.importorskip("keras_hub")

T, D, Q_HEADS, KV_HEADS, HEAD_DIM, FFN = 8, 32, 4, 2, 8, 64


def _gqa_decoder(normalize=True, layers=2):
    from keras_hub.src.models.gemma.gemma_attention import CachedGemmaAttention

    tokens = keras.Input(batch_shape=(2, T, D), name="x")
    mask = keras.Input(batch_shape=(2, T, T), dtype="int32", name="mask")
    x = keras.layers.Dense(D, name="embed")(tokens)
    for i in range(layers):
        x = x + CachedGemmaAttention(
            head_dim=HEAD_DIM, num_query_heads=Q_HEADS,
            num_key_value_heads=KV_HEADS, query_head_dim_normalize=normalize,
            name=f"att{i}",
        )(x, attention_mask=mask)  # fmt: skip
        gate = keras.layers.EinsumDense("btd,df->btf", (T, FFN))(x)
        up = keras.layers.EinsumDense("btd,df->btf", (T, FFN))(x)
        hidden = keras.activations.gelu(gate, approximate=True) * up
        down = keras.layers.EinsumDense("btf,fd->btd", (T, D))
        x = x + down(hidden)
    return keras.Model([tokens, mask], keras.layers.Dense(3)(x))


def _data():
    rng = np.random.default_rng(0)
    causal = np.tril(np.ones((T, T), "int32"))[None].repeat(2, 0)
    return [rng.standard_normal((2, T, D)).astype("float32"), causal]


def _max_diff(a, b, x):
    return max(
        float(np.abs(np.asarray(p) - np.asarray(q)).max())
        for p, q in zip(keras.tree.flatten(a(x)), keras.tree.flatten(b(x)))
    )


def _attention_layers(model):
    return [
        layer
        for layer in model.layers
        if type(layer).__name__ == "CachedGemmaAttention"
    ]


def test_gqa_heads_pruned_in_whole_kv_groups_and_gated_ffn():
    model = _gqa_decoder()
    groups = {g.name: g for g in knp.channel_groups(model)}
    kv = [g for n, g in groups.items() if n.endswith("/kv_groups")]
    ffn = [g for g in groups.values() if g.size == FFN]
    assert [g.size for g in kv] == [KV_HEADS] * 2 and len(ffn) == 2
    assert all(g.prunable and g.exact for g in kv + ffn)
    # Keep the second kv group: a wrong query-to-kv mapping would make
    # the thin model read the wrong key/value head.
    keep = {g.name: [1] for g in kv}
    keep.update({g.name: np.arange(0, FFN, 2) for g in ffn})
    thin, report = thin_model(model, keep)
    ref = zero_removed_inputs(model, keep)
    x = _data()
    assert _max_diff(thin, ref, x) < 1e-5
    assert _max_diff(model, ref, x) > 1e-3
    heads = [
        (a.num_query_heads, a.num_key_value_heads)
        for a in _attention_layers(thin)
    ]
    assert heads == [(Q_HEADS // KV_HEADS, 1)] * 2
    assert report.flops_after < 0.65 * report.flops_before


def test_gqa_query_scale_follows_the_head_count():
    # query_head_dim_normalize=False scales by 1/sqrt(hidden // heads):
    # halving the residual width changes it; the thin query is rescaled.
    model = _gqa_decoder(normalize=False, layers=1)
    keep = {"embed": np.arange(D // 2)}
    thin, _ = thin_model(model, keep, allow_inexact=True)
    ref = zero_removed_inputs(model, keep, allow_inexact=True)
    assert _max_diff(thin, ref, _data()) < 1e-5


def test_unmodified_gemma_backbone_is_a_barrier_with_the_reason():
    model = keras_hub.models.GemmaBackbone(
        vocabulary_size=100, num_layers=2, num_query_heads=Q_HEADS,
        num_key_value_heads=KV_HEADS, hidden_dim=D, intermediate_dim=FFN,
        head_dim=HEAD_DIM,
    )  # fmt: skip
    reasons = " ".join(g.reason or "" for g in knp.channel_groups(model))
    assert "decoder_block_0" in reasons
    assert "size that is unknown in the graph" in reasons


def _mit():
    return keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[2, 4],
        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
        hidden_dims=[16, 32], image_shape=(32, 32, 3),
    )  # fmt: skip


def _sublayers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _sublayers(layer)


def test_mit_heads_and_mix_ffn_thin_exactly():
    model = _mit()
    groups = knp.channel_groups(model)
    prunable = [g for g in groups if g.prunable]
    heads = [g for g in prunable if g.name.endswith("/heads")]
    ffn = [g for g in prunable if "mix_ffn" in g.name]
    # One head group per block (sequence reduction 2 in the first, none in
    # the second) and the Mix-FFN hidden width (4x, through the depthwise
    # conv) of every block; nothing else is prunable.
    assert sorted(g.size for g in heads) == [2, 4]
    assert sorted(g.size for g in ffn) == [64, 128]
    assert len(prunable) == 4 and all(g.exact for g in prunable)
    # Odd heads and channels: a head taken from the wrong slice of the
    # q/k/v/proj kernels or of the reshaped Dense kernels shows up.
    keep = {g.name: np.arange(1, g.size, 2) for g in prunable}
    thin, report = thin_model(model, keep)
    ref = zero_removed_inputs(model, keep)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3))
    x = x.astype("float32")
    assert _max_diff(thin, ref, x) < 1e-5
    assert _max_diff(model, ref, x) > 1e-3
    attention = [
        layer
        for layer in _sublayers(thin)
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert sorted(a.num_heads for a in attention) == [1, 2]
    assert all(a.key_dim == 8 for a in attention)
    assert report.flops_after < 0.75 * report.flops_before
