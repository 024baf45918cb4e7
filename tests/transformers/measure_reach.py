"""Prints the FLOP reach of half the heads and half the FFN width.

Run: `KERAS_BACKEND=tensorflow python tests/transformers/measure_reach.py`
(from the repository root; keras-hub installed). For every model: the
prunable groups, the FLOPs before and after keeping the first half of
every head group and FFN group, and the largest difference between the
thinned model and the zeroed reference.
"""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import keras_neuronprune as knp  # noqa: E402
from keras_neuronprune.rewrite import thin_model  # noqa: E402
from keras_neuronprune.rewrite import zero_removed_inputs  # noqa: E402

DIM, HEADS, FFN, LAYERS, LENGTH, VOCAB = 64, 4, 256, 2, 32, 100


def _hand_built():
    from test_attention_heads import _block

    inputs = keras.Input((LENGTH, 8))
    x = keras.layers.Dense(DIM, name="embed")(inputs)
    for i in range(LAYERS):
        x = _block(x, f"b{i}", DIM, HEADS, FFN)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name="hand_built")


def _hub(name):
    import keras_hub
    from hub_inline import inline
    from keras_hub.src.layers.modeling import transformer_decoder
    from keras_hub.src.layers.modeling import transformer_encoder
    from keras_hub.src.models.vit import vit_layers

    common = dict(num_layers=LAYERS, num_heads=HEADS, hidden_dim=DIM)
    if name == "vit":
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(64, 64, 3), patch_size=8, mlp_dim=FFN, **common
        )
        encoder = backbone.get_layer("vit_encoder")
        tokens = keras.Input((65, DIM))
        model = keras.Model(tokens, encoder(tokens), name="vit_encoder")
        classes = [vit_layers.ViTEncoder, vit_layers.ViTEncoderBlock]
        classes.append(vit_layers.MLP)
    else:
        cls, block = {
            "bert": (keras_hub.models.BertBackbone, transformer_encoder),
            "gpt2": (keras_hub.models.GPT2Backbone, transformer_decoder),
        }[name]
        model = cls(
            vocabulary_size=VOCAB, intermediate_dim=FFN,
            max_sequence_length=LENGTH, **common,
        )  # fmt: skip
        classes = [
            block.TransformerEncoder
            if name == "bert"
            else block.TransformerDecoder
        ]
    return inline(model, classes, length=LENGTH)


def _inputs(model):
    rng = np.random.default_rng(0)
    if len(model.inputs) == 1 and "int" not in model.inputs[0].dtype:
        shape = [2] + [int(d) for d in model.inputs[0].shape[1:]]
        return rng.standard_normal(shape).astype("float32")
    data = {
        "token_ids": rng.integers(0, VOCAB, (2, LENGTH)),
        "padding_mask": np.ones((2, LENGTH)),
        "segment_ids": np.zeros((2, LENGTH)),
    }
    return {t.name: data[t.name].astype("int32") for t in model.inputs}


def main():
    builders = {"hand-built": _hand_built}
    builders.update({n: (lambda n=n: _hub(n)) for n in ("vit", "bert", "gpt2")})
    for name, build in builders.items():
        model = build()
        groups = knp.channel_groups(model)
        keep = {g.name: np.arange(g.size // 2) for g in groups if g.prunable}
        thin, report = thin_model(model, keep)
        ref = zero_removed_inputs(model, keep)
        x = _inputs(model)
        diff = max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(
                keras.tree.flatten(thin(x)), keras.tree.flatten(ref(x))
            )
        )
        heads = sum(g.name.endswith("/heads") for g in groups if g.prunable)
        print(
            f"{name:10s} groups={len(keep)} (heads {heads}) FLOPs "
            f"{report.flops_before:,} -> {report.flops_after:,} "
            f"(reach {1 - report.flops_after / report.flops_before:.3f}), "
            f"params {report.params_before:,} -> {report.params_after:,}, "
            f"max|thin - zeroed| = {diff:.2e}"
        )


if __name__ == "__main__":
    main()
