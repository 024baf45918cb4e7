"""Rebuilds a functional / Sequential model layer by layer with new weights.

Used in two modes: "thin" (physically smaller layers with sliced weights)
and "zero" (same shapes, consumer-side weights of removed channels zeroed:
the reference that a thin model must match exactly).
"""

import keras
import numpy as np

from keras_neuronprune.graph import _keras_graph as kg


class Rebuilder:
    def __init__(self, graph, kept, mode):
        self.graph = graph
        self.kept = kept
        self.mode = mode
        self._new = {}
        self._pending = []

    def build(self, model):
        new_model = self._model(model)
        for layer, weights in self._pending:
            if weights:
                layer.set_weights(weights)
        return new_model

    # ------------------------------------------------------------------
    def _keep(self, ids):
        return self.graph.tensor_keep(ids, self.kept)

    def _input(self, tensor):
        shape = list(tensor.shape)
        keep = self._keep(self.graph.channels(tensor))
        if keep is not None and self.mode == "thin":
            shape[-1] = int(keep.sum())
        layer, _, _ = kg.tensor_producer(tensor)
        return keras.Input(
            batch_shape=tuple(shape), dtype=tensor.dtype, name=layer.name
        )

    def _model(self, model):
        functional = kg.as_functional(model)
        new_inputs = [self._input(t) for t in functional.inputs]
        if kg.is_sequential(model) and functional is model._functional:
            new_layers = [self._operation(layer) for layer in model.layers]
            return keras.Sequential(
                [new_inputs[0]] + new_layers, name=model.name
            )
        outputs = kg.run_through_graph(functional, new_inputs, self._operation)
        structure = functional._inputs_struct
        inputs = keras.tree.pack_sequence_as(structure, new_inputs)
        return keras.Model(inputs, outputs, name=model.name)

    def _operation(self, op):
        new = self._new.get(id(op))
        if new is None:
            new = self._make(op)
            self._new[id(op)] = new
        return new

    def _make(self, op):
        info = self.graph.layers.get(id(op))
        if isinstance(op, keras.Model) and (info is None or not info.barrier):
            return self._model(op)
        if not isinstance(op, keras.layers.Layer):
            # A stateless raw op (x + y, ops.pad...): reuse it, unless its
            # arguments hold a channel count that the keep set changes.
            if info is None or info.handler is None or info.barrier:
                return op
            in_keep = [self._keep(ids) for ids in info.in_ids]
            out_keep = [self._keep(ids) for ids in info.out_ids]
            if self.mode == "thin" and _changes(in_keep + out_keep):
                return info.handler.rebuild_operation(
                    op, in_keep, out_keep, info
                )
            return op
        rebuild = getattr(getattr(info, "handler", None), "rebuild_layer", None)
        if rebuild is not None and not info.barrier:
            # Layers with internal channels (attention heads) or repeated
            # weight names rebuild themselves: `(new layer, weight values)`.
            new, new_values = rebuild(op, info, self)
            self._pending.append((new, new_values))
            return new
        config = op.get_config()
        names = [w.name for w in op.weights]
        values = op.get_weights()
        weights = dict(zip(names, values))
        if len(weights) != len(values):
            weights = None
        if info is not None and info.handler is not None and not info.barrier:
            in_keep = [self._keep(ids) for ids in info.in_ids]
            out_keep = [self._keep(ids) for ids in info.out_ids]
            if self.mode == "thin" and _changes(in_keep + out_keep):
                config, weights = info.handler.thin(
                    op, config, weights, in_keep, out_keep, info
                )
            elif self.mode == "zero" and _changes(in_keep):
                weights = info.handler.zero_inputs(op, weights, in_keep)
        new = kg.rebuild_from_config(op, config)
        if weights is None:
            new_values = values
        else:
            new_values = [weights[n] for n in names]
        self._pending.append((new, new_values))
        return new


def _changes(masks):
    return any(m is not None and not m.all() for m in masks)


def cast_keep(keep_values):
    return np.asarray(keep_values, dtype=np.int64)
