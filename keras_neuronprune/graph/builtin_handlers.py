"""Handlers for the Keras layers (and raw ops) that the graph understands.

Conventions: the channel axis is the last one (channels_last); a layer
configured with `data_format="channels_first"` is a barrier. Every handler
returns None from `propagate` when it handled the call, or a string (the
reason) to turn the call into a barrier.
"""

import numpy as np

from keras_neuronprune.graph import _keras_graph as kg
from keras_neuronprune.graph import flops_formulas as ff
from keras_neuronprune.graph.dependency_graph import channel_count
from keras_neuronprune.graph.handlers import LayerHandler
from keras_neuronprune.graph.handlers import register_builtin_handler
from keras_neuronprune.graph.handlers import take
from keras_neuronprune.graph.handlers import zero

keras = kg.keras
layers = keras.layers

ELEMENTWISE_ACTIVATIONS = {
    "linear", "relu", "relu6", "sigmoid", "tanh", "swish", "silu", "gelu",
    "elu", "selu", "softplus", "softsign", "hard_sigmoid", "hard_silu",
    "hard_swish", "exponential", "leaky_relu", "mish", "log_sigmoid",
    "celu", "sparse_plus", "squareplus", "tanh_shrink", "hard_tanh",
    "hard_shrink", "soft_shrink", "threshold", None,
}  # fmt: skip
CHANNEL_NORMALISING_ACTIVATIONS = {"softmax", "log_softmax", "sparsemax"}


def _activation_name(layer):
    act = layer.get_config().get("activation", "linear")
    if isinstance(act, dict):
        inner = act.get("config", {})
        # A registered function serialises as {"config": "package>name"}.
        if isinstance(inner, str):
            return {"keras_hub>gelu_approximate": "gelu"}.get(inner, inner)
        act = inner.get("name", act.get("class_name"))
    return act


def _check_activation(layer, site):
    """Returns (barrier reason or None, inexact reason or None)."""
    name = _activation_name(layer)
    if name in CHANNEL_NORMALISING_ACTIVATIONS:
        return None, f"layer '{site.path}' applies {name} across channels"
    if name not in ELEMENTWISE_ACTIVATIONS:
        return (
            f"blocked by layer '{site.path}': activation {name!r} is not "
            "known to act on each channel independently",
            None,
        )
    return None, None


def _channels_last(layer, site):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        return (
            f"blocked by layer '{site.path}': data_format={fmt!r} (only "
            "channels_last is supported)"
        )
    return None


def _check_filter_layer(layer, site):
    """(barrier reason or None, inexact reason or None) of a conv layer."""
    reason = _channels_last(layer, site)
    if reason:
        return reason, None
    return _check_activation(layer, site)


def _channelwise_outputs(graph, site, in_ids, multiplier, inexact):
    """Output channel `c*m+j` comes from input channel `c` (depthwise)."""
    ids = np.repeat(in_ids, multiplier)
    graph.set_channels(site.outputs[0], ids, site.path)
    _members(graph, site, "channelwise", "channelwise")
    if inexact:
        graph.inexact(ids, inexact)
    return None


def _thin_filters(config, weights, okeep):
    """Keeps the bias entries and the `filters` count of the kept outputs."""
    if "bias" in weights:
        weights["bias"] = take(weights["bias"], okeep, -1)
    if okeep is not None:
        config["filters"] = int(okeep.sum())
    return config, weights


def _members(graph, site, kind_in, kind_out):
    for i, t in enumerate(site.inputs):
        graph.add_member(site, "input", kind_in, i, graph.channels(t))
    for t in site.outputs:
        graph.add_member(site, "output", kind_out, 0, graph.channels(t))


def _rank_axis(axis, rank):
    return axis % rank if axis is not None else None


class ChannelwiseHandler(LayerHandler):
    """A layer acting on each channel independently (one input, one output).

    Args:
        per_channel_weights: names of weights whose last axis is the channel
            axis (sliced when channels go).
        channel_config_keys: config keys holding the number of channels
            (set to the new count).
        weight_names: all weight names the layer may have (defaults to
            `per_channel_weights`).
        check_activation: whether the layer's `activation` must be checked.
    """

    def __init__(
        self,
        per_channel_weights=(),
        channel_config_keys=(),
        weight_names=None,
        check_activation=False,
    ):
        self.per_channel_weights = tuple(per_channel_weights)
        self.channel_config_keys = tuple(channel_config_keys)
        self.weight_names = tuple(
            per_channel_weights if weight_names is None else weight_names
        )
        self.check_activation = check_activation

    def slices_params(self, layer, site):
        return True

    def propagate(self, layer, site, graph):
        reason = _channels_last(layer, site)
        if reason:
            return reason
        if self.check_activation:
            reason, inexact = _check_activation(layer, site)
            if reason:
                return reason
        tensors = [t for t in site.inputs if graph.channels(t) is not None]
        if len(site.outputs) != 1 or len(tensors) > 1:
            return (
                f"blocked by layer '{site.path}' ({type(layer).__name__}): "
                "expected one input and one output"
            )
        out = site.outputs[0]
        ids = graph.channels(tensors[0]) if tensors else None
        if ids is None or channel_count(out) != len(ids):
            if ids is None and channel_count(out) is None:
                return None
            return (
                f"blocked by layer '{site.path}' ({type(layer).__name__}): "
                "it changes the number of channels"
            )
        graph.set_channels(out, ids, site.path)
        _members(graph, site, "channelwise", "channelwise")
        if self.check_activation and inexact:
            graph.inexact(ids, inexact)
        return self.extra(layer, site, graph, ids)

    def extra(self, layer, site, graph, ids):
        return None

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        keep = out_keep[0]
        if keep is None:
            return config, weights
        n = int(keep.sum())
        for name in self.per_channel_weights:
            w = weights.get(name)
            if w is not None and w.ndim and w.shape[-1] == keep.size:
                weights[name] = take(w, keep, -1)
        for key in self.channel_config_keys:
            if key in config:
                config[key] = n
        return config, weights


class AxisParamHandler(ChannelwiseHandler):
    """Normalisation layers with an `axis` argument (BN, LN, Normalization).

    Per-channel weights are sliced only when the channel axis is among the
    normalised axes. `normalises_channels` marks the group inexact when the
    statistics are taken across the channel axis (LayerNormalization).
    """

    def __init__(self, weight_names, normalises_channels=False):
        super().__init__(per_channel_weights=weight_names)
        self.normalises_channels = normalises_channels

    def _axes(self, layer, rank):
        axis = getattr(layer, "axis", -1)
        if axis is None:
            return set()
        axis = axis if isinstance(axis, (list, tuple)) else [axis]
        return {a % rank for a in axis}

    def extra(self, layer, site, graph, ids):
        rank = len(site.inputs[0].shape)
        if (rank - 1) in self._axes(layer, rank) and self.normalises_channels:
            graph.inexact(
                ids,
                f"layer '{site.path}' ({type(layer).__name__}) normalises "
                "across channels",
            )
        return None

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        rank = len(info.in_shapes[0])
        if (rank - 1) not in self._axes(layer, rank):
            return config, weights
        config, weights = super().thin(
            layer, config, weights, in_keep, out_keep, info
        )
        keep = out_keep[0]
        if keep is not None:
            for key in ("mean", "variance"):
                value = config.get(key)
                if value is not None and np.ndim(value):
                    arr = np.asarray(value)
                    if arr.shape[-1] == keep.size:
                        config[key] = take(arr, keep, -1).tolist()
        return config, weights


class GroupNormalizationHandler(ChannelwiseHandler):
    def __init__(self):
        super().__init__(per_channel_weights=("gamma", "beta"))

    def extra(self, layer, site, graph, ids):
        rank = len(site.inputs[0].shape)
        if layer.axis % rank != rank - 1:
            return (
                f"blocked by layer '{site.path}': GroupNormalization over "
                "a non-channel axis"
            )
        groups, n = layer.groups, len(ids)
        if groups == n:
            return None
        graph.inexact(
            ids,
            f"layer '{site.path}' (GroupNormalization) normalises across "
            "channels",
        )
        if groups > 1:
            graph.partition(site, ids, np.arange(n) // (n // groups))
        return None

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        keep = out_keep[0]
        n_in = keep.size if keep is not None else None
        config, weights = super().thin(
            layer, config, weights, in_keep, out_keep, info
        )
        if keep is not None and config["groups"] == n_in:
            config["groups"] = int(keep.sum())
        return config, weights


class SoftmaxHandler(ChannelwiseHandler):
    def extra(self, layer, site, graph, ids):
        rank = len(site.inputs[0].shape)
        axis = (
            layer.axis
            if isinstance(layer.axis, (list, tuple))
            else [layer.axis]
        )
        if (rank - 1) in {a % rank for a in axis}:
            name = type(layer).__name__
            graph.inexact(
                ids, f"layer '{site.path}' ({name}) normalises across channels"
            )
        return None


class RescalingHandler(ChannelwiseHandler):
    def thin(self, layer, config, weights, in_keep, out_keep, info):
        keep = out_keep[0]
        if keep is None:
            return config, weights
        for key in ("scale", "offset"):
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("config", {}).get("value", value)
            if np.ndim(value) and np.shape(value)[-1] == keep.size:
                config[key] = take(np.asarray(value), keep, -1).tolist()
        return config, weights


class ConvHandler(LayerHandler):
    """Conv1D/2D/3D (also grouped): consumes input channels, makes filters."""

    weight_names = ("kernel", "bias")
    transpose = False

    def propagate(self, layer, site, graph):
        reason, inexact = _check_filter_layer(layer, site)
        if reason:
            return reason
        in_ids = graph.channels(site.inputs[0])
        out = site.outputs[0]
        groups = getattr(layer, "groups", 1) or 1
        if groups > 1 and groups == len(in_ids):
            # groups == input channels is a depthwise convolution: output
            # channel c*m+j reads input channel c only.
            return _channelwise_outputs(
                graph, site, in_ids, channel_count(out) // groups, inexact
            )
        ids = graph.new_channels(site, channel_count(out))
        graph.set_channels(out, ids, site.path)
        _members(graph, site, "consumer", "producer")
        if groups > 1:
            n_in, n_out = len(in_ids), len(ids)
            graph.partition(site, in_ids, np.arange(n_in) // (n_in // groups))
            graph.partition(site, ids, np.arange(n_out) // (n_out // groups))
        if inexact:
            graph.inexact(ids, inexact)
        return None

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        kernel = weights["kernel"]
        k_in, k_out = (-1, -2) if self.transpose else (-2, -1)
        groups = getattr(layer, "groups", 1) or 1
        ikeep, okeep = in_keep[0], out_keep[0]
        if groups > 1 and ikeep is not None and groups == ikeep.size:
            weights["kernel"] = take(kernel, okeep, k_out)
            if "bias" in weights:
                weights["bias"] = take(weights["bias"], okeep, -1)
            config["groups"] = int(ikeep.sum())
            config["filters"] = int(okeep.sum())
            return config, weights
        if groups == 1:
            kernel = take(take(kernel, ikeep, k_in), okeep, k_out)
        else:
            kernel = _grouped(kernel, ikeep, okeep, groups, take)
        weights["kernel"] = kernel
        return _thin_filters(config, weights, okeep)

    def zero_inputs(self, layer, weights, in_keep):
        k_in = -1 if self.transpose else -2
        groups = getattr(layer, "groups", 1) or 1
        if groups > 1 and in_keep[0] is not None and groups == in_keep[0].size:
            return weights  # depthwise-like: no input mixing to zero.
        if groups == 1:
            weights["kernel"] = zero(weights["kernel"], in_keep[0], k_in)
        else:
            weights["kernel"] = _grouped(
                weights["kernel"], in_keep[0], None, groups, zero
            )
        return weights


def _grouped(kernel, ikeep, okeep, groups, fn):
    """Applies `fn` (take or zero) per conv group of a grouped kernel."""
    cin_g = kernel.shape[-2]
    cout_g = kernel.shape[-1] // groups
    parts = []
    for g in range(groups):
        part = kernel[..., g * cout_g : (g + 1) * cout_g]
        if ikeep is not None:
            part = fn(part, ikeep[g * cin_g : (g + 1) * cin_g], -2)
        if okeep is not None:
            part = take(part, okeep[g * cout_g : (g + 1) * cout_g], -1)
        parts.append(part)
    return np.concatenate(parts, axis=-1)


class ConvTransposeHandler(ConvHandler):
    transpose = True


class DepthwiseHandler(LayerHandler):
    """DepthwiseConv1D/2D: output channel c*m+j comes from input channel c."""

    weight_names = ("kernel", "bias")

    def propagate(self, layer, site, graph):
        reason, inexact = _check_filter_layer(layer, site)
        if reason:
            return reason
        in_ids = graph.channels(site.inputs[0])
        return _channelwise_outputs(
            graph, site, in_ids, layer.depth_multiplier, inexact
        )

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        weights["kernel"] = take(weights["kernel"], in_keep[0], -2)
        if "bias" in weights:
            weights["bias"] = take(weights["bias"], out_keep[0], -1)
        return config, weights


class SeparableHandler(LayerHandler):
    """SeparableConv1D/2D: depthwise (per channel) then pointwise (mixes)."""

    weight_names = ("depthwise_kernel", "pointwise_kernel", "bias")

    def propagate(self, layer, site, graph):
        return ConvHandler.propagate(self, layer, site, graph)

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        ikeep, okeep = in_keep[0], out_keep[0]
        m = layer.depth_multiplier
        weights["depthwise_kernel"] = take(
            weights["depthwise_kernel"], ikeep, -2
        )
        pk = weights["pointwise_kernel"]
        if ikeep is not None:
            pk = take(pk, np.repeat(ikeep, m), -2)
        weights["pointwise_kernel"] = take(pk, okeep, -1)
        return _thin_filters(config, weights, okeep)

    def zero_inputs(self, layer, weights, in_keep):
        if in_keep[0] is not None:
            rows = np.repeat(in_keep[0], layer.depth_multiplier)
            weights["pointwise_kernel"] = zero(
                weights["pointwise_kernel"], rows, -2
            )
        return weights


class DenseHandler(LayerHandler):
    """Dense on the last axis (2-D or N-D inputs)."""

    weight_names = ("kernel", "bias")
    config_key = "units"

    def propagate(self, layer, site, graph):
        return ConvHandler.propagate(self, layer, site, graph)

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        ikeep, okeep = in_keep[0], out_keep[0]
        weights["kernel"] = take(take(weights["kernel"], ikeep, 0), okeep, 1)
        if "bias" in weights:
            weights["bias"] = take(weights["bias"], okeep, -1)
        if okeep is not None:
            self.set_units(config, int(okeep.sum()))
        return config, weights

    def set_units(self, config, n):
        config["units"] = n

    def zero_inputs(self, layer, weights, in_keep):
        weights["kernel"] = zero(weights["kernel"], in_keep[0], 0)
        return weights


class EinsumDenseHandler(DenseHandler):
    """EinsumDense whose kernel is `(in, out)` on the last axes."""

    def _dense_like(self, layer):
        eq = layer.equation.replace(" ", "")
        try:
            lhs, out = eq.split("->")
            x, k = lhs.split(",")
        except ValueError:
            return False
        if len(k) != 2 or not x or not out:
            return False
        i, o = k
        bias_axes = layer.bias_axes or ""
        return (
            x[-1] == i
            and i not in out
            and out[-1] == o
            and o not in x
            and bias_axes in ("", o)
        )

    def propagate(self, layer, site, graph):
        if not self._dense_like(layer):
            return (
                f"blocked by layer '{site.path}' (EinsumDense "
                f"{layer.equation!r}): no clear channel axis"
            )
        return ConvHandler.propagate(self, layer, site, graph)

    def set_units(self, config, n):
        shape = config["output_shape"]
        if isinstance(shape, int):
            config["output_shape"] = n
        else:
            config["output_shape"] = list(shape[:-1]) + [n]


class MergeHandler(LayerHandler):
    """Element-wise merges (Add, Multiply...), broadcasting included."""

    def propagate(self, layer, site, graph):
        out = site.outputs[0]
        n = channel_count(out)
        full = []
        for i, t in enumerate(site.inputs):
            ids = graph.channels(t)
            if ids is None:
                continue
            if len(ids) == n:
                full.append(ids)
                graph.add_member(site, "input", "channelwise", i, ids)
            elif len(ids) != 1:
                return (
                    f"blocked by layer '{site.path}': inputs of "
                    f"{len(ids)} and {n} channels"
                )
        if not full:
            return (
                None
                if n is None
                else (
                    f"blocked by layer '{site.path}': no input carries its "
                    "channels"
                )
            )
        for ids in full[1:]:
            graph.couple(full[0], ids)
        graph.set_channels(out, full[0], site.path)
        graph.add_member(site, "output", "channelwise", 0, full[0])
        return None


class ConcatenateHandler(LayerHandler):
    def propagate(self, layer, site, graph):
        out = site.outputs[0]
        rank = len(out.shape)
        ids = [graph.channels(t) for t in site.inputs]
        if any(i is None for i in ids):
            return f"blocked by layer '{site.path}': input without channels"
        if layer.axis % rank == rank - 1:
            graph.set_channels(out, np.concatenate(ids), site.path)
        else:
            for other in ids[1:]:
                graph.couple(ids[0], other)
            graph.set_channels(out, ids[0], site.path)
        _members(graph, site, "channelwise", "channelwise")
        return None


class FlattenHandler(LayerHandler):
    """Flatten (channels_last): channel c of position p lands at p*C + c."""

    def propagate(self, layer, site, graph):
        reason = _channels_last(layer, site)
        if reason:
            return reason
        x = site.inputs[0]
        ids = graph.channels(x)
        if ids is None:
            return None
        spatial = x.shape[1:-1]
        if any(d is None for d in spatial):
            return (
                f"blocked by layer '{site.path}': Flatten of unknown "
                "spatial size"
            )
        out_ids = np.tile(ids, int(np.prod(spatial, dtype=np.int64)))
        graph.set_channels(site.outputs[0], out_ids, site.path)
        _members(graph, site, "channelwise", "channelwise")
        return None


class ReshapeHandler(LayerHandler):
    """Reshape that keeps the channel axis last (squeeze-excitation kind),
    or flattens everything (like Flatten)."""

    def propagate(self, layer, site, graph):
        x, out = site.inputs[0], site.outputs[0]
        ids = graph.channels(x)
        if ids is None:
            return None
        if out.shape[-1] == x.shape[-1] and len(out.shape) >= 2:
            graph.set_channels(out, ids, site.path)
        elif len(out.shape) == 2 and all(d is not None for d in x.shape[1:]):
            spatial = int(np.prod(x.shape[1:-1], dtype=np.int64))
            if out.shape[1] != spatial * len(ids):
                return f"blocked by layer '{site.path}': unusual Reshape"
            graph.set_channels(out, np.tile(ids, spatial), site.path)
        else:
            return (
                f"blocked by layer '{site.path}' (Reshape "
                f"{tuple(x.shape)} -> {tuple(out.shape)}): it moves the "
                "channel axis"
            )
        _members(graph, site, "channelwise", "channelwise")
        return None

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        keep = out_keep[0]
        if keep is None:
            return config, weights
        shape = list(config["target_shape"])
        if len(shape) == 1 and len(info.in_shapes[0]) > 2:
            per = keep.size // in_keep[0].size
            shape[0] = int(in_keep[0].sum()) * per
        elif shape[-1] != -1:
            shape[-1] = int(keep.sum())
        config["target_shape"] = tuple(shape)
        return config, weights


class PermuteHandler(ChannelwiseHandler):
    def extra(self, layer, site, graph, ids):
        return None

    def propagate(self, layer, site, graph):
        dims = tuple(layer.dims)
        if dims[-1] != len(dims):
            return (
                f"blocked by layer '{site.path}' (Permute {dims}): it moves "
                "the channel axis"
            )
        return super().propagate(layer, site, graph)


class LayerScaleHandler(ChannelwiseHandler):
    """keras.applications' LayerScale: one per-channel scale (auto-named)."""

    def __init__(self):
        super().__init__(channel_config_keys=("projection_dim",))

    def known(self, layer):
        return len(layer.weights) <= 1

    def thin(self, layer, config, weights, in_keep, out_keep, info):
        keep = out_keep[0]
        if keep is not None:
            weights = {k: take(v, keep, -1) for k, v in weights.items()}
            config["projection_dim"] = int(keep.sum())
        return config, weights


_BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def _layer_table():
    """Rows `(handler, FLOP rule or None, layer classes)`.

    A row's classes share one handler that carries the row's rule. A
    `LayerHandler()` row gives only FLOPs: for the graph those layers stay
    barriers. A row without a rule leaves the FLOPs to the base class
    (BoundedBatchNormalization is costed as a BatchNormalization).
    """
    from keras_neuronprune.layers.bounded_batch_normalization import (
        BoundedBatchNormalization,
    )

    L = layers
    helpers = kg.applications_helper_layers()
    channelwise = ChannelwiseHandler()
    merge = MergeHandler()
    flops_only = LayerHandler()
    return (
        (channelwise, ff.zero_flops, (
            L.ReLU, L.LeakyReLU, L.ELU, L.Dropout, L.SpatialDropout1D,
            L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise,
            L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
            L.Identity, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
            L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D,
            L.UpSampling2D, L.UpSampling3D, L.RepeatVector, L.Resizing,
            helpers["StochasticDepth"],
        )),
        (channelwise, ff.pooling_flops, (
            L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
            L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
        )),
        (channelwise, ff.global_pooling_flops, (
            L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
            L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
            L.GlobalAveragePooling3D,
        )),
        (ChannelwiseHandler(check_activation=True), ff.activation_layer_flops,
         (L.Activation,)),
        (ChannelwiseHandler(per_channel_weights=("alpha",)), ff.prelu_flops,
         (L.PReLU,)),
        (AxisParamHandler(_BN_WEIGHTS), ff.batch_normalization_flops,
         (L.BatchNormalization,)),
        # Models built with RNI's bounded BatchNorm from the start.
        (AxisParamHandler(_BN_WEIGHTS + ("channel_mask",)), None,
         (BoundedBatchNormalization,)),
        (AxisParamHandler(("gamma", "beta"), normalises_channels=True),
         ff.layer_normalization_flops, (L.LayerNormalization,)),
        (AxisParamHandler((), normalises_channels=True),
         ff.unit_normalization_flops, (L.UnitNormalization,)),
        (AxisParamHandler(("mean", "variance", "count")), ff.two_per_element,
         (L.Normalization,)),
        (GroupNormalizationHandler(), ff.group_normalization_flops,
         (L.GroupNormalization,)),
        (SoftmaxHandler(), ff.softmax_flops, (L.Softmax,)),
        (RescalingHandler(), ff.two_per_element, (L.Rescaling,)),
        (ConvHandler(), ff.conv_flops, (L.Conv1D, L.Conv2D, L.Conv3D)),
        (ConvTransposeHandler(), ff.conv_transpose_flops,
         (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)),
        (DepthwiseHandler(), ff.depthwise_conv_flops,
         (L.DepthwiseConv1D, L.DepthwiseConv2D)),
        (SeparableHandler(), ff.separable_conv_flops,
         (L.SeparableConv1D, L.SeparableConv2D)),
        (DenseHandler(), ff.dense_flops, (L.Dense,)),
        (EinsumDenseHandler(), ff.einsum_dense_flops, (L.EinsumDense,)),
        (merge, ff.merge_flops,
         (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum)),
        (merge, ff.average_flops, (L.Average,)),
        (merge, ff.custom_scale_flops, (helpers["CustomScaleLayer"],)),
        (ConcatenateHandler(), ff.zero_flops, (L.Concatenate,)),
        (FlattenHandler(), ff.zero_flops, (L.Flatten,)),
        (ReshapeHandler(), ff.zero_flops, (L.Reshape,)),
        (PermuteHandler(), ff.zero_flops, (L.Permute,)),
        (LayerScaleHandler(), ff.layer_scale_flops, (helpers["LayerScale"],)),
        (flops_only, ff.zero_flops, (
            L.InputLayer, L.CenterCrop, L.Masking, L.Embedding,
            L.StringLookup, L.IntegerLookup, L.Hashing, L.HashedCrossing,
            L.CategoryEncoding, L.Discretization, L.TextVectorization,
        ) + _augmentation_layers()),
        (flops_only, ff.global_pooling_flops, (
            L.AdaptiveAveragePooling1D, L.AdaptiveAveragePooling2D,
            L.AdaptiveAveragePooling3D, L.AdaptiveMaxPooling1D,
            L.AdaptiveMaxPooling2D, L.AdaptiveMaxPooling3D,
        )),
        (flops_only, ff.rms_normalization_flops, (L.RMSNormalization,)),
        (flops_only, ff.dot_flops, (L.Dot,)),
        (flops_only, ff.time_distributed_flops, (L.TimeDistributed,)),
    )  # fmt: skip


def _augmentation_layers():
    # Data-augmentation layers are the identity at inference.
    return tuple(
        getattr(layers, name)
        for name in dir(layers)
        if name.startswith("Random")
        or name in ("AugMix", "CutMix", "MixUp", "RandAugment")
    )


def register_rows(rows):
    """Registers rows `(handler, FLOP rule or None, classes)` (built-ins)."""
    for handler, rule, classes in rows:
        if rule is not None:
            handler = handler.with_flops(rule)
        for cls in classes:
            register_builtin_handler(cls, handler)


def _register_all():
    register_rows(_layer_table())


_register_all()
