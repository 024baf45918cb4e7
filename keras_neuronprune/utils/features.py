"""Access to intermediate tensors of a functional model, by layer name.

Layers themselves are found with `keras_neuronprune.core.surgery`.
"""

import keras
import numpy as np

from keras_neuronprune.graph import _keras_graph


def call_site_map(model):
    """Maps each top-level layer name to its list of `CallSite`s."""
    functional = _keras_graph.as_functional(model)
    sites = {}
    for site in _keras_graph.call_sites(functional):
        name = getattr(site.operation, "name", None)
        sites.setdefault(name, []).append(site)
    return functional, sites


def member_tensor(model, member, sites=None):
    """The symbolic tensor in which a `GroupMember`'s channels live.

    Args:
        model: functional or Sequential model.
        member: a `GroupMember` (`layer`, `role`, `input_index`).
        sites: optional result of `call_site_map(model)[1]`.

    Returns:
        The KerasTensor of the member's layer output (role "output") or of
        its input number `input_index` (role "input"), first call site.

    Raises:
        ValueError: for layers inside nested models or missing layers.
    """
    if sites is None:
        sites = call_site_map(model)[1]
    if "/" in member.layer:
        raise ValueError(
            f"Layer {member.layer!r} is inside a nested model; data-driven "
            "criteria read top-level layers only. Flatten the model first."
        )
    if member.layer not in sites:
        raise ValueError(
            f"Layer {member.layer!r} of the channel group is not in the model "
            "being scored."
        )
    site = sites[member.layer][0]
    if member.role == "output":
        return site.outputs[0]
    return site.inputs[member.input_index]


def feature_model(model, tensors):
    """A model from the inputs of `model` to the given symbolic tensors."""
    functional = _keras_graph.as_functional(model)
    return keras.Model(functional.inputs, list(tensors))


def run_feature_model(sub, batches):
    """Yields the list of NumPy outputs of `sub` for every batch's `x`."""
    for x, _ in batches:
        out = sub.predict_on_batch(x)
        if not isinstance(out, (list, tuple)):
            out = [out]
        yield [np.asarray(o) for o in out]
