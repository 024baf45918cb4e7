"""Heads and FFN widths of keras-hub transformers (ViT, BERT, GPT-2).

Small backbones from their constructors (random weights). The blocks are
custom layers; `hub_inline.inline` stands in for custom-layer tracing so
the `MultiHeadAttention` / `CachedMultiHeadAttention` layers inside them
are graph call sites. `test_backbone_without_inlining` runs on the
backbones as they are (the graph traces their blocks itself, GPT-2's
causal mask included, at unknown batch and sequence sizes).
"""

import keras
import numpy as np
import pytest

import keras_neuronprune as knp
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import zero_removed_inputs

keras_hub = pytest.importorskip("keras_hub")

LAYERS, HEADS, DIM, FFN, VOCAB, LENGTH = 2, 4, 16, 32, 50, 8


def _vit():
    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=LAYERS,
        num_heads=HEADS, hidden_dim=DIM, mlp_dim=FFN,
    )  # fmt: skip


def _vit_encoder():
    # The patch embedding holds a raw `ops.tile` over a dynamic batch,
    # which inlining cannot run; the encoder stack is where the heads are.
    encoder = _vit().get_layer("vit_encoder")
    tokens = keras.Input((17, DIM), name="tokens")
    return keras.Model(tokens, encoder(tokens), name="vit_encoder_stack")


def _bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
        hidden_dim=DIM, intermediate_dim=FFN, max_sequence_length=LENGTH,
    )  # fmt: skip


def _gpt2():
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
        hidden_dim=DIM, intermediate_dim=FFN, max_sequence_length=LENGTH,
    )  # fmt: skip


def _block_classes(name):
    from keras_hub.src.layers.modeling.transformer_decoder import (
        TransformerDecoder,
    )
    from keras_hub.src.layers.modeling.transformer_encoder import (
        TransformerEncoder,
    )
    from keras_hub.src.models.vit import vit_layers

    return {
        "vit": [vit_layers.ViTEncoder, vit_layers.ViTEncoderBlock,
                vit_layers.MLP],
        "bert": [TransformerEncoder],
        "gpt2": [TransformerDecoder],
    }[name]  # fmt: skip


BUILDERS = {"vit": _vit_encoder, "bert": _bert, "gpt2": _gpt2}


def _inputs(model):
    rng = np.random.default_rng(0)
    if len(model.inputs) == 1:
        shape = [2] + [
            LENGTH if d is None else d for d in model.inputs[0].shape[1:]
        ]
        return rng.standard_normal(shape).astype("float32")
    names = [t.name for t in model.inputs]
    data = {
        "token_ids": rng.integers(0, VOCAB, size=(2, LENGTH)),
        "padding_mask": np.array([[1] * LENGTH, [1] * 5 + [0] * 3]),
        "segment_ids": np.zeros((2, LENGTH)),
    }
    return {n: data[n].astype("int32") for n in names}


def _outputs(model, x):
    return [
        keras.ops.convert_to_numpy(y)
        for y in keras.tree.flatten(model(x, training=False))
    ]


def _check_half(model):
    groups = knp.channel_groups(model)
    heads = [g for g in groups if g.name.endswith("/heads")]
    ffn = [g for g in groups if g.size == FFN]
    assert len(heads) == LAYERS and len(ffn) == LAYERS
    assert all(g.prunable and g.exact for g in heads + ffn)
    keep = {g.name: np.arange(g.size // 2) for g in groups if g.prunable}
    thin, report = thin_model(model, keep)
    ref = zero_removed_inputs(model, keep)
    x = _inputs(model)
    for actual, expected, original in zip(
        _outputs(thin, x), _outputs(ref, x), _outputs(model, x)
    ):
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(actual, expected, atol=1e-5 * scale)
        assert np.abs(original - expected).max() > 1e-5
    attention = [
        layer
        for layer in _all_layers(thin)
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert [a.num_heads for a in attention] == [HEADS // 2] * LAYERS
    return report


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_inlined_backbone_heads_and_ffn(name):
    model = BUILDERS[name]()
    from hub_inline import inline

    inlined = inline(model, _block_classes(name), length=LENGTH)
    report = _check_half(inlined)
    assert report.flops_after / report.flops_before < 0.6


@pytest.mark.parametrize("name", ["bert", "gpt2", "vit"])
def test_backbone_without_inlining(name):
    # ViT's patching layer does not round-trip its config (it writes the
    # derived `num_patches`, `num_positions`): it is rebuilt from the keys
    # its constructor takes.
    model = {"vit": _vit, "bert": _bert, "gpt2": _gpt2}[name]()
    _check_half(model)
