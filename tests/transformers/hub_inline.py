"""Test stand-in for custom-layer tracing: inline keras-hub blocks.

Until the channel graph traces custom layers itself (issue 11, item 1),
these tests rebuild a keras-hub backbone as a functional model in which
the listed block classes (TransformerEncoder, ViTEncoderBlock...) are
replaced by the Keras layers their `call` uses, so the attention and FFN
layers inside become call sites of the graph. Unknown sizes (batch,
sequence) are fixed, since some blocks build masks from `ops.shape`.
"""

import contextlib

import keras

from keras_neuronprune.graph import _keras_graph as kg


@contextlib.contextmanager
def _calls_inlined(classes):
    from keras_hub.src.layers.modeling.cached_multi_head_attention import (
        CachedMultiHeadAttention,
    )

    def cached_call(self, *args, **kwargs):
        # MultiHeadAttention.compute_output_spec takes no cache arguments.
        for name in ("cache", "cache_update_index"):
            if name in kwargs and kwargs[name] is None:
                kwargs.pop(name)
        return keras.layers.MultiHeadAttention.__call__(self, *args, **kwargs)

    def inlined_call(self, *args, **kwargs):
        return type(self).call(self, *args, **kwargs)

    patched = [CachedMultiHeadAttention] + list(classes)
    for cls in patched:
        assert "__call__" not in cls.__dict__, cls
    CachedMultiHeadAttention.__call__ = cached_call
    for cls in classes:
        cls.__call__ = inlined_call
    try:
        yield
    finally:
        for cls in patched:
            del cls.__call__


def _unique_sublayer_names(model, classes):
    seen = {layer.name for layer in model.layers}

    def visit(layer, prefix):
        for sub in layer._layers:
            if isinstance(sub, tuple(classes)):
                visit(sub, f"{prefix}{sub.name}_")
                continue
            name = prefix + sub.name
            while name in seen:
                name += "_"
            seen.add(name)
            sub.name = name

    for layer in model.layers:
        if isinstance(layer, tuple(classes)):
            visit(layer, f"{layer.name}_")


def inline(model, classes, batch=2, length=8):
    """A functional copy of `model` with `classes` inlined (shares weights).

    Renames the sublayers of the inlined blocks (a functional model needs
    unique names), so `model` itself should be thrown away afterwards.
    """
    _unique_sublayer_names(model, classes)
    functional = kg.as_functional(model)
    inputs = []
    for tensor in functional.inputs:
        shape = [batch] + [length if d is None else d for d in tensor.shape[1:]]
        name = kg.tensor_producer(tensor)[0].name
        inputs.append(
            keras.Input(batch_shape=tuple(shape), dtype=tensor.dtype, name=name)
        )
    with _calls_inlined(classes):
        outputs = kg.run_through_graph(functional, inputs, lambda op: op)
    inputs = keras.tree.pack_sequence_as(functional._inputs_struct, inputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_inlined")
