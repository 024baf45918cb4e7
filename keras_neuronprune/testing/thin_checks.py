"""Assertions that a thinned model computes what the masked model computes."""

import gc
import hashlib
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_neuronprune.core import surgery


def random_inputs(model, rng=None, batch_size=2, default_dim=8):
    """Random inputs for every input of a functional model.

    Float inputs are standard normal; integer inputs are uniform in [0, 8);
    boolean inputs are True.

    Args:
        model: a functional or Sequential Keras model.
        rng: a `numpy.random.Generator`, an int seed, or `None`.
        batch_size: size of the batch axis.
        default_dim: the size used for any other unknown (`None`) axis.

    Returns:
        A list of NumPy arrays, one per model input.
    """
    return surgery.random_inputs(
        model, batch_size=batch_size, seed=rng, unknown_dim=default_dim
    )


def model_outputs(model, inputs):
    """Calls `model` in inference mode and returns its outputs as NumPy.

    Args:
        model: a Keras model.
        inputs: a list of arrays, one per model input.

    Returns:
        A flat list of NumPy arrays, one per model output.
    """
    x = inputs[0] if len(inputs) == 1 else list(inputs)
    y = model(x, training=False)
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(y)]


def assert_outputs_close(actual, expected, rtol=1e-4, scale_floor=1.0, what=""):
    """Asserts `max|a - b| <= rtol * max(scale_floor, max|b|)` per output.

    Args:
        actual: list of arrays.
        expected: list of arrays with the same shapes.
        rtol: tolerance relative to the output scale.
        scale_floor: smallest output scale (an absolute tolerance floor).
        what: text prefixed to the failure message.

    Raises:
        AssertionError: if a shape differs or an output is not close.
    """
    assert len(actual) == len(expected), (
        f"{what}: {len(actual)} outputs, expected {len(expected)}"
    )
    for i, (a, b) in enumerate(zip(actual, expected)):
        a = np.asarray(a, dtype="float64")
        b = np.asarray(b, dtype="float64")
        assert a.shape == b.shape, (
            f"{what}: output {i} has shape {a.shape}, expected {b.shape}"
        )
        assert np.all(np.isfinite(a)), f"{what}: output {i} is not finite"
        scale = max(scale_floor, float(np.max(np.abs(b))) if b.size else 0.0)
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        assert err <= rtol * scale, (
            f"{what}: output {i} differs by max|a-b|={err:.3g} > "
            f"{rtol:g} * scale {scale:.3g}"
        )


def weights_fingerprint(model):
    """A digest of every weight value, in order (to detect mutation)."""
    digest = hashlib.sha1()
    for w in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w.value))
        digest.update(str((w.path, value.shape, value.dtype)).encode())
        digest.update(memoryview(value).cast("B"))
    return digest.hexdigest()


def removed_positions(groups, keep):
    """Channel positions each layer loses under `keep`.

    Args:
        groups: the list returned by `channel_groups`.
        keep: a keep dict.

    Returns:
        A dict `{(layer, role, input_index): set of removed positions}`
        built from every group member's `channels` array.
    """
    removed = {}
    for group in groups:
        if group.name not in keep:
            continue
        kept = np.zeros(int(group.size), dtype=bool)
        kept[np.asarray(keep[group.name], dtype="int64")] = True
        for member in group.members:
            channels = np.asarray(member.channels).reshape(int(group.size), -1)
            key = (member.layer, member.role, member.input_index)
            removed.setdefault(key, set()).update(
                channels[~kept].reshape(-1).tolist()
            )
    return removed


def _channel_axis(layer):
    return 1 if getattr(layer, "data_format", None) == "channels_first" else -1


def _output_shape(layer):
    try:
        output = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None  # shared layers have no single output
    if isinstance(output, (list, tuple, dict)):
        return None
    return tuple(output.shape)


def assert_channel_counts(model, thin, groups, keep):
    """Asserts each top-level layer output lost exactly the removed channels.

    Only top-level layers with one output and one call site are checked.

    Args:
        model: the original model.
        thin: the thinned model.
        groups: `channel_groups(model, ...)`.
        keep: the keep dict used to thin.

    Raises:
        AssertionError: if a layer's channel count is not the planned one.
    """
    for (name, role, _), positions in removed_positions(groups, keep).items():
        if role != "output" or "/" in name or not positions:
            continue
        try:
            layer, new_layer = model.get_layer(name), thin.get_layer(name)
        except ValueError:
            continue  # an operation (e.g. `x + 3.0`), not a layer
        before = _output_shape(layer)
        after = _output_shape(new_layer)
        if before is None or after is None:
            continue
        axis = _channel_axis(layer)
        assert after[axis] == before[axis] - len(positions), (
            f"layer {name!r}: output channels {after[axis]}, expected "
            f"{before[axis]} - {len(positions)} removed"
        )


def _costs(model, thin, report):
    """(params, flops) before and after, from the report when it has them."""
    if hasattr(report, "flops_before") and hasattr(report, "params_before"):
        return (
            (report.params_before, report.flops_before),
            (report.params_after, report.flops_after),
        )
    from keras_neuronprune.cost import count_cost

    before = count_cost(model)
    after = count_cost(thin)
    return (before.params, before.flops), (after.params, after.flops)


def _removes_something(groups, keep):
    sizes = {g.name: int(g.size) for g in groups}
    return any(len(v) < sizes.get(k, len(v) + 1) for k, v in keep.items())


def assert_thin_matches(
    model,
    keep,
    allow_inexact=False,
    groups=None,
    inputs=None,
    rng=0,
    batch_size=2,
    rtol=1e-4,
    scale_floor=1.0,
    exact=True,
    check_cost=True,
    check_save=True,
    check_channels=True,
    tmp_dir=None,
):
    """Thins `model` and checks it against the zero-masked reference model.

    Checks, in order:
    1. `thin_model` and `zero_removed_inputs` leave `model` unchanged
       (same weight values, same layers) and keep the layer names.
    2. With `exact=True`, on random inputs in inference mode, every thin
       output is within `rtol * max(scale_floor, max|ref|)` of the output
       of `zero_removed_inputs(model, keep)`. With `exact=False` (inexact
       groups such as LayerNormalization) only the output shapes must match
       the original ones and the outputs must be finite.
    3. Each top-level layer lost exactly the channels `keep` removes.
    4. When `keep` removes something: `count_params()` and the report's
       (`count_cost`) params and FLOPs strictly fall.
    5. The thin model round-trips through a `.keras` file with
       `keras.models.load_model` and no custom objects, with the same
       outputs after reload.

    Args:
        model: a functional or Sequential Keras model.
        keep: a keep dict (group name -> sorted kept channel indices).
        allow_inexact: passed to `channel_groups`, `thin_model` and
            `zero_removed_inputs`.
        groups: `channel_groups(model, allow_inexact)` if already computed.
        inputs: list of input arrays; random (see `random_inputs`) if `None`.
        rng: seed or generator for the random inputs.
        batch_size: batch size of the random inputs.
        rtol: tolerance relative to the output scale.
        scale_floor: smallest output scale used by the tolerance.
        exact: whether thin must equal the reference (see above).
        check_cost: whether to check that params and FLOPs fall.
        check_save: whether to check the `.keras` round trip.
        check_channels: whether to check per-layer channel counts.
        tmp_dir: folder for the `.keras` file (a fresh temp folder if None).

    Returns:
        `(thin_model, report)` as returned by `thin_model`.

    Raises:
        AssertionError: if a check fails.

    Example:

    ```python
    groups = keras_neuronprune.channel_groups(model)
    keep = keras_neuronprune.testing.random_keep(groups, rng=0)
    keras_neuronprune.testing.assert_thin_matches(model, keep, groups=groups)
    ```
    """
    from keras_neuronprune.graph import channel_groups
    from keras_neuronprune.rewrite import thin_model
    from keras_neuronprune.rewrite import zero_removed_inputs

    if groups is None:
        groups = channel_groups(model, allow_inexact=allow_inexact)
    if inputs is None:
        inputs = random_inputs(model, rng=rng, batch_size=batch_size)
    names = [layer.name for layer in model.layers]
    fingerprint = weights_fingerprint(model)
    original = model_outputs(model, inputs)

    ref_out = None
    if exact:
        # Built (and freed) before the thin model to bound peak memory.
        ref = zero_removed_inputs(model, keep, allow_inexact=allow_inexact)
        assert ref is not model, "zero_removed_inputs returned its input"
        ref_out = model_outputs(ref, inputs)
        del ref
        gc.collect()
        for r, o in zip(ref_out, original):
            assert r.shape == o.shape, "reference changed an output shape"

    thin, report = thin_model(model, keep, allow_inexact=allow_inexact)
    assert isinstance(thin, keras.Model), f"thin_model returned {type(thin)}"
    assert thin is not model, "thin_model returned its input model"
    thin_out = model_outputs(thin, inputs)

    if exact:
        assert_outputs_close(
            thin_out, ref_out, rtol, scale_floor, what="thin vs reference"
        )
    else:
        assert [o.shape for o in thin_out] == [o.shape for o in original], (
            "thin model output shapes differ from the original ones"
        )
        for i, o in enumerate(thin_out):
            assert np.all(np.isfinite(o)), f"thin output {i} is not finite"

    assert weights_fingerprint(model) == fingerprint, (
        "the input model's weights changed"
    )
    assert [layer.name for layer in model.layers] == names
    assert_outputs_close(
        model_outputs(model, inputs), original, 1e-6, 0.0, "original model"
    )

    if check_channels:
        assert_channel_counts(model, thin, groups, keep)

    if check_cost and _removes_something(groups, keep):
        assert thin.count_params() < model.count_params(), (
            f"params did not fall: {thin.count_params()} vs "
            f"{model.count_params()}"
        )
        before, after = _costs(model, thin, report)
        assert after[0] < before[0], (
            f"count_cost params did not fall: {after[0]} vs {before[0]}"
        )
        # The report cannot count FLOPs for an unknown spatial size (it
        # gives None or 0); params must still fall.
        if before[1]:
            assert after[1] < before[1], (
                f"count_cost FLOPs did not fall: {after[1]} vs {before[1]}"
            )

    if check_save:
        folder = tmp_dir or tempfile.mkdtemp(prefix="kn_thin_")
        path = os.path.join(folder, "thin.keras")
        try:
            thin.save(path)
            loaded = keras.models.load_model(path)
            assert_outputs_close(
                model_outputs(loaded, inputs),
                thin_out,
                1e-6,
                scale_floor,
                what="thin model after .keras reload",
            )
            del loaded
        finally:
            if tmp_dir is None:
                shutil.rmtree(folder, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)
    thin_names = [layer.name for layer in thin.layers]
    changed = [(a, b) for a, b in zip(names, thin_names) if a != b]
    assert len(thin_names) == len(names) and not changed, (
        f"thin_model changed the layer names (original, thin): {changed[:5]}"
        f" ({len(names)} vs {len(thin_names)} layers)"
    )
    return thin, report
