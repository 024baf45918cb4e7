import math

import keras
import numpy as np
import pytest

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity._distributions import erk_sparsities
from keras_neuronprune.sparsity._optimizer_slots import slot_variables
from keras_neuronprune.sparsity.methods.nnrelief_method import (
    cumulative_share_before,
)
from keras_neuronprune.sparsity.methods.nnrelief_method import relief_scores
from keras_neuronprune.sparsity.methods.rigl_method import cosine_drop_fraction
from keras_neuronprune.sparsity.methods.rigl_method import rigl_update

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _linear_mlp():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, name="a")(inputs)
    outputs = keras.layers.Dense(3, name="b")(h)
    return keras.Model(inputs, outputs)


def _numpy_snip(model, x, y):
    w1, b1, w2, b2 = [v.numpy().astype("float64") for v in model.weights]
    h = x @ w1 + b1
    z = h @ w2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(3)[y]) / len(x)
    g2 = h.T @ dz
    g1 = x.T @ (dz @ w2.T)
    s1, s2 = np.abs(w1 * g1), np.abs(w2 * g2)
    total = s1.sum() + s2.sum()
    return {"a": s1 / total, "b": s2 / total}


def test_snip_scores_match_numpy_and_keep_the_global_top_k():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    model = _linear_mlp()
    expected = _numpy_snip(model, x.astype("float64"), y)
    pruned = prune_weights(
        model, method="snip", sparsity=0.5, data=(x, y), loss=LOSS
    )
    layers = pruned.controller.layers_of(pruned)
    scores = pruned.controller.algorithm.last_scores
    histograms = pruned.controller.importance_histograms(pruned)
    flat = np.concatenate([expected["a"].ravel(), expected["b"].ravel()])
    threshold = np.sort(flat)[22]  # 23 of the 45 weights are pruned
    for name, layer in layers:
        mask = layer.kernel_mask.numpy()
        np.testing.assert_allclose(scores[name], expected[name], rtol=1e-4)
        np.testing.assert_allclose(
            histograms[name], expected[name].ravel(), rtol=1e-4
        )
        assert np.all(expected[name][mask == 0] <= threshold * (1 + 1e-6))
        assert np.all(expected[name][mask == 1] > threshold * (1 - 1e-6))
    kept = sum(layer.kernel_mask.numpy().sum() for _, layer in layers)
    assert kept == 22
    assert sum(s.sum() for s in scores.values()) == pytest.approx(1.0)


def test_rigl_initial_masks_follow_erk(cnn_factory, cnn_data):
    pruned = prune_weights(
        cnn_factory(),
        method="rigl",
        sparsity=0.8,
        data=cnn_data,
        loss=LOSS,
        end_step=100,
        seed=1,
    )
    layers = pruned.controller.layers_of(pruned)
    shapes = {n: tuple(layer.kernel_mask.shape) for n, layer in layers}
    target = erk_sparsities(shapes, 0.8)
    for name, layer in layers:
        mask = layer.kernel_mask.numpy()
        expected = int(np.floor(target[name] * mask.size + 0.5))
        assert int((mask == 0).sum()) == expected
        assert np.all(layer.kernel_variable.numpy()[mask == 0] == 0)


def test_rigl_update_drops_smallest_and_grows_largest_gradients():
    rng = np.random.default_rng(4)
    mask = (rng.random((10, 8)) > 0.5).astype("float32")
    kernel = rng.normal(size=(10, 8)) * mask
    grad = rng.normal(size=(10, 8))
    active = int(mask.sum())
    new, grown, k = rigl_update(mask, kernel, grad, 0.3)
    assert k == int(0.3 * active)
    assert int(new.sum()) == active
    # Drop: keep the active - k largest |w|.
    order = np.argsort(-np.abs(kernel * mask).ravel(), kind="stable")
    order = [i for i in order if mask.ravel()[i] == 1][: active - k]
    kept = np.zeros(mask.size)
    kept[order] = 1
    kept = kept.reshape(mask.shape)
    dropped = (mask == 1) & (kept == 0)
    assert int(dropped.sum()) == k
    assert np.abs(kernel[dropped]).max() <= np.abs(kernel[kept == 1]).min()
    # Grow: the k largest |grad| outside the kept set.
    grown_any = new - kept
    assert set(np.unique(grown_any)) <= {0.0, 1.0}
    assert int(grown_any.sum()) == k
    outside = kept == 0
    chosen = np.abs(grad)[(grown_any == 1)]
    rest = np.abs(grad)[outside & (grown_any == 0)]
    assert chosen.min() >= rest.max()
    np.testing.assert_array_equal(grown.astype(bool), (mask == 0) & (new == 1))


def test_rigl_controller_update_counts_and_optimizer_reset(
    cnn_factory, cnn_data
):
    x, y = cnn_data
    pruned = prune_weights(
        cnn_factory(),
        method="rigl",
        sparsity=0.7,
        data=cnn_data,
        loss=LOSS,
        end_step=40,
        update_frequency=10,
        seed=0,
    )
    pruned.compile(keras.optimizers.SGD(0.01, momentum=0.9), LOSS)
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0)  # builds the slots
    controller = pruned.controller
    controller.on_train_begin(pruned)
    layers = controller.layers_of(pruned)
    before = {n: layer.kernel_mask.numpy() for n, layer in layers}
    for _, layer in layers:
        slots = slot_variables(pruned.optimizer, layer.kernel_variable)
        assert len(slots) == 1  # SGD momentum
        for slot in slots:
            slot.assign(np.ones(slot.shape))
    controller.on_train_batch_end(pruned, 8)  # 9 steps done: no update
    assert controller.algorithm.last_update == {}
    controller.on_train_batch_end(pruned, 19)  # 20 steps done: update
    fraction = cosine_drop_fraction(20, 0.3, 40)
    assert fraction == pytest.approx(0.15 * (1 + math.cos(math.pi / 2)))
    for name, layer in layers:
        update = controller.algorithm.last_update[name]
        active = int(before[name].sum())
        assert update["active_before"] == active
        assert update["dropped"] == update["grown"] == int(active * fraction)
        assert update["active_after"] == active
        new = layer.kernel_mask.numpy()
        grown = (before[name] == 0) & (new == 1)
        kernel = layer.kernel_variable.numpy()
        assert np.all(kernel[new == 0] == 0)
        assert np.all(kernel[grown] == 0)
        for slot in slot_variables(pruned.optimizer, layer.kernel_variable):
            value = slot.numpy()
            assert np.all(value[new == 0] == 0)
            assert np.all(value[grown] == 0)
            assert np.all(value[(before[name] == 1) & (new == 1)] == 1)


def test_iss_p_shrinks_the_lowest_fraction_then_hard_prunes(mlp_factory):
    model = mlp_factory()
    pruned = prune_weights(
        model, method="iss_p", sparsity=0.5, end_step=3, shrink_ratio=0.9
    )
    controller = pruned.controller
    controller.on_train_begin(pruned)
    layer = pruned.get_layer("fc2")
    kernel = layer.kernel_variable.numpy().copy()
    controller.on_train_batch_end(pruned, 0)
    after = layer.kernel_variable.numpy()
    threshold = np.sort(np.abs(kernel).ravel())[kernel.size // 2]
    low = np.abs(kernel) < threshold
    np.testing.assert_allclose(after[low], 0.9 * kernel[low], rtol=1e-6)
    np.testing.assert_array_equal(after[~low], kernel[~low])
    assert layer.kernel_mask.numpy().min() == 1.0
    controller.on_train_batch_end(pruned, 1)
    controller.on_train_batch_end(pruned, 2)  # step 3 reached: hard prune
    for _, masked in controller.layers_of(pruned):
        mask = masked.kernel_mask.numpy()
        assert (mask == 0).mean() == pytest.approx(0.5, abs=1e-3)
    assert controller.summary_scalars(pruned)["sparsity"] == pytest.approx(
        0.5, abs=1e-3
    )


def _brute_conv_relief(x, kernel, bias):
    """mean_n ||conv(|x_ni|, |K_ij|)||_F, stride 1, valid padding."""
    n, height, width, cin = x.shape
    kh, kw, _, cout = kernel.shape
    oh, ow = height - kh + 1, width - kw + 1
    contrib = np.zeros((cin, cout))
    for i in range(cin):
        for j in range(cout):
            total = 0.0
            for s in range(n):
                out = np.zeros((oh, ow))
                for a in range(oh):
                    for b in range(ow):
                        patch = np.abs(x[s, a : a + kh, b : b + kw, i])
                        out[a, b] = np.sum(patch * np.abs(kernel[:, :, i, j]))
                total += np.sqrt(np.sum(out**2))
            contrib[i, j] = total / n
    denominator = contrib.sum(axis=0) + np.abs(bias) * np.sqrt(oh * ow)
    return contrib / denominator


def test_nnrelief_scores_match_the_formulas():
    rng = np.random.default_rng(5)
    inputs = keras.Input((5, 5, 3))
    conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    flat = keras.layers.Flatten()(conv)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(flat))
    model.get_layer("conv").bias.assign(rng.normal(size=4))
    model.get_layer("fc").bias.assign(rng.normal(size=2))
    x = rng.normal(size=(3, 5, 5, 3)).astype("float32")
    pruned = prune_weights(model, method="nnrelief", sparsity=0.3, data=(x, x))
    conv_layer = pruned.get_layer("conv")
    got = relief_scores(conv_layer, x)
    expected = _brute_conv_relief(
        x, conv_layer.kernel_variable.numpy(), conv_layer.bias.numpy()
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    fc = pruned.get_layer("fc")
    h = np.asarray(model.get_layer("flatten")(model.get_layer("conv")(x)))
    contrib = (
        np.abs(fc.kernel_variable.numpy()) * np.abs(h).mean(axis=0)[:, None]
    )
    expected = contrib / (contrib.sum(axis=0) + np.abs(fc.bias.numpy()))
    np.testing.assert_allclose(relief_scores(fc, h), expected, rtol=1e-5)


def test_nnrelief_cumulative_share_and_pruning_keep_each_strongest_input(
    mlp_factory, digits
):
    shares = np.array([[0.5, 0.1], [0.3, 0.6], [0.2, 0.3]])
    np.testing.assert_allclose(
        cumulative_share_before(shares), [[0.0, 0.9], [0.5, 0.0], [0.8, 0.6]]
    )
    xtr, _, ytr, _ = digits
    pruned = prune_weights(
        mlp_factory(),
        method="nnrelief",
        sparsity=0.9,
        data=(xtr[:64], ytr[:64]),
    )
    pruned.controller.on_train_begin(pruned)
    pruned.controller.on_train_batch_begin(pruned, 0)
    scalars = pruned.controller.summary_scalars(pruned)
    assert scalars["sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert 0 < scalars["nnrelief/alpha"] < 1
    for _, layer in pruned.controller.layers_of(pruned):
        # Every neuron keeps at least its strongest incoming connection.
        assert np.all(layer.kernel_mask.numpy().sum(axis=0) >= 1)


def test_nnrelief_skips_depthwise_layers(cnn_factory, cnn_data):
    pruned = prune_weights(
        cnn_factory(), method="nnrelief", sparsity=0.5, data=cnn_data
    )
    names = [n for n, _ in pruned.controller.layers_of(pruned)]
    assert names == ["c1", "pw", "head"]
    with pytest.raises(ValueError, match="cannot prune layer 'dw'"):
        prune_weights(
            cnn_factory(),
            method="nnrelief",
            sparsity=0.5,
            data=cnn_data,
            layers=["dw"],
        )


def test_scl_adapts_the_penalty_and_freezes_to_the_exact_target(
    mlp_factory, digits
):
    xtr, _, ytr, _ = digits
    pruned = prune_weights(
        mlp_factory(),
        method="scl",
        sparsity=0.6,
        end_step=30,
        update_frequency=5,
        penalty=0.2,
        penalty_rate=0.5,
    )
    pruned.compile(keras.optimizers.Adam(1e-3), LOSS)
    controller = pruned.controller
    controller.on_train_begin(pruned)
    layer = pruned.get_layer("fc1")
    controller.on_train_batch_end(pruned, 4)  # 5 steps: sparsity 0 < 0.6
    assert float(layer.mask_penalty_weight.numpy()) == pytest.approx(0.3)
    for _, masked in controller.layers_of(pruned):
        masked.kernel_mask_score.assign(-np.ones(masked.kernel_mask.shape))
    controller.on_train_batch_end(pruned, 9)  # sparsity 1 > 0.6
    assert float(layer.mask_penalty_weight.numpy()) == pytest.approx(0.2)
    pruned.fit(
        xtr,
        ytr,
        batch_size=64,
        epochs=2,
        verbose=0,
        callbacks=[UpdatePruning()],
    )
    scalars = controller.summary_scalars(pruned)
    assert scalars["scl/frozen"] == 1.0
    assert scalars["sparsity"] == pytest.approx(0.6, abs=1e-3)
    for _, masked in controller.layers_of(pruned):
        mask = masked.kernel_mask.numpy()
        assert np.all(masked.kernel_variable.numpy()[mask == 0] == 0)


def test_snip_uses_the_loss_the_user_model_was_compiled_with():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    model = _linear_mlp()
    model.compile("sgd", LOSS)
    expected = _numpy_snip(model, x.astype("float64"), y)
    pruned = prune_weights(model, method="snip", sparsity=0.5, data=(x, y))
    scores = pruned.controller.algorithm.last_scores
    np.testing.assert_allclose(scores["b"], expected["b"], rtol=1e-4)
    assert pruned.controller.get_config()["loss"] is None


def _brute_relief_nd(x, kernel, bias, groups=1, causal=False):
    """Brute-force NNrelief shares for a stride-1 'valid' N-D convolution."""
    if causal:
        pad = kernel.shape[0] - 1
        x = np.pad(x, [(0, 0), (pad, 0), (0, 0)])
    ksize = kernel.shape[:-2]
    cin_g, cout = kernel.shape[-2:]
    cout_g = cout // groups
    out_shape = tuple(s - k + 1 for s, k in zip(x.shape[1:-1], ksize))
    contrib = np.zeros((cin_g, cout))
    for j in range(cout):
        g = j // cout_g
        for i in range(cin_g):
            channel = np.abs(x[..., g * cin_g + i])
            taps = np.abs(kernel[..., i, j])
            total = 0.0
            for sample in channel:
                out = np.zeros(out_shape)
                for pos in np.ndindex(*out_shape):
                    window = tuple(slice(p, p + k) for p, k in zip(pos, ksize))
                    out[pos] = np.sum(sample[window] * taps)
                total += np.sqrt(np.sum(out**2))
            contrib[i, j] = total / len(x)
    spatial = int(np.prod(out_shape))
    return contrib / (contrib.sum(axis=0) + np.abs(bias) * np.sqrt(spatial))


@pytest.mark.parametrize(
    "layer_fn,shape,groups,causal",
    [
        (lambda: keras.layers.Conv1D(4, 3, name="conv"), (2, 7, 3), 1, False),
        (
            lambda: keras.layers.Conv1D(4, 3, padding="causal", name="conv"),
            (2, 6, 3),
            1,
            True,
        ),
        (
            lambda: keras.layers.Conv3D(2, 2, name="conv"),
            (2, 3, 3, 3, 2),
            1,
            False,
        ),
        (
            lambda: keras.layers.Conv2D(4, 2, groups=2, name="conv"),
            (2, 4, 4, 4),
            2,
            False,
        ),
    ],
)
def test_nnrelief_conv_variants_match_brute_force(
    layer_fn, shape, groups, causal
):
    rng = np.random.default_rng(6)
    inputs = keras.Input(shape[1:])
    layer = layer_fn()
    outputs = keras.layers.Flatten()(layer(inputs))
    model = keras.Model(inputs, outputs)
    layer.bias.assign(rng.normal(size=layer.bias.shape))
    x = rng.normal(size=shape).astype("float32")
    pruned = prune_weights(
        model, method="nnrelief", sparsity=0.3, data=(x, x), layers=["conv"]
    )
    masked = pruned.get_layer("conv")
    expected = _brute_relief_nd(
        x.astype("float64"),
        masked.kernel_variable.numpy().astype("float64"),
        masked.bias.numpy(),
        groups=groups,
        causal=causal,
    )
    np.testing.assert_allclose(relief_scores(masked, x), expected, rtol=1e-4)
