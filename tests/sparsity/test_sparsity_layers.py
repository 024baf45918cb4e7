import keras
import numpy as np
import pytest

from keras_neuronprune.sparsity import layers as sparse_layers
from keras_neuronprune.utils.gradients import loss_and_gradients

CASES = [
    ("WeightMaskedDense", "Dense", {"units": 5}, (4, 6)),
    ("WeightMaskedDense", "Dense", {"units": 3}, (2, 4, 6)),
    (
        "WeightMaskedConv1D",
        "Conv1D",
        {"filters": 4, "kernel_size": 3, "padding": "causal"},
        (2, 9, 4),
    ),
    (
        "WeightMaskedConv2D",
        "Conv2D",
        {"filters": 4, "kernel_size": 3, "groups": 2, "strides": 2},
        (2, 9, 9, 4),
    ),
    (
        "WeightMaskedConv3D",
        "Conv3D",
        {"filters": 3, "kernel_size": 2, "padding": "same"},
        (2, 4, 4, 4, 2),
    ),
    (
        "WeightMaskedDepthwiseConv1D",
        "DepthwiseConv1D",
        {"kernel_size": 3, "depth_multiplier": 2},
        (2, 7, 3),
    ),
    (
        "WeightMaskedDepthwiseConv2D",
        "DepthwiseConv2D",
        {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
        (2, 6, 6, 3),
    ),
]


def _pair(masked_name, parent_name, kwargs, shape):
    masked = getattr(sparse_layers, masked_name)(**kwargs)
    parent = getattr(keras.layers, parent_name)(**kwargs)
    masked.build(shape)
    parent.build(shape)
    return masked, parent


@pytest.mark.parametrize("masked_name,parent_name,kwargs,shape", CASES)
def test_masked_layer_computes_parent_with_masked_kernel(
    masked_name, parent_name, kwargs, shape
):
    masked, parent = _pair(masked_name, parent_name, kwargs, shape)
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    kernel = masked.kernel_variable.numpy()
    mask = (rng.random(kernel.shape) > 0.4).astype("float32")
    masked.kernel_mask.assign(mask)
    if masked.bias is not None:
        masked.bias.assign(rng.normal(size=masked.bias.shape))
    parent_weights = [kernel * mask] + [
        w.numpy() for w in masked.weights[1 : len(parent.weights)]
    ]
    parent.set_weights(parent_weights)
    np.testing.assert_allclose(
        np.asarray(masked(x)), np.asarray(parent(x)), atol=1e-5
    )
    assert masked.kernel_mask.trainable is False
    assert masked.parent_class is type(parent)


@pytest.mark.parametrize("masked_name,parent_name,kwargs,shape", CASES[:4])
def test_masked_layer_config_round_trip_and_parent_config(
    masked_name, parent_name, kwargs, shape
):
    masked, _ = _pair(masked_name, parent_name, kwargs, shape)
    config = masked.get_config()
    again = type(masked).from_config(config)
    assert again.get_config() == config
    parent = masked.parent_class.from_config(masked.parent_config())
    assert type(parent).__name__ == parent_name
    assert "learned_mask" not in parent.get_config()


def test_masks_and_scores_are_saved_with_weights(tmp_path):
    inputs = keras.Input((6,))
    layer = sparse_layers.WeightMaskedDense(4, learned_mask=True, name="d")
    model = keras.Model(inputs, layer(inputs))
    layer.kernel_mask.assign(np.tril(np.ones((6, 4), "float32")))
    layer.kernel_mask_score.assign(np.arange(24.0).reshape(6, 4) - 12)
    layer.mask_penalty_weight.assign(0.7)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    inputs2 = keras.Input((6,))
    layer2 = sparse_layers.WeightMaskedDense(4, learned_mask=True, name="d")
    model2 = keras.Model(inputs2, layer2(inputs2))
    model2.load_weights(path)
    for a, b in zip(model.weights, model2.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(layer2.mask_penalty_weight.numpy()) == pytest.approx(0.7)


def test_lora_is_rejected():
    with pytest.raises(ValueError, match="lora_rank=2"):
        sparse_layers.WeightMaskedDense(4, lora_rank=2)


def _learned_dense(normalize, penalty):
    inputs = keras.Input((5,))
    layer = sparse_layers.WeightMaskedDense(
        3,
        learned_mask=True,
        mask_penalty=penalty,
        normalize_mask_gradients=normalize,
        name="d",
    )
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(1)
    layer.kernel_variable.assign(rng.normal(size=(5, 3)))
    layer.bias.assign(rng.normal(size=(3,)))
    score = rng.normal(size=(5, 3)).astype("float32")
    layer.kernel_mask_score.assign(score)
    x = rng.normal(size=(7, 5)).astype("float32")
    y = rng.normal(size=(7, 3)).astype("float32")
    return model, layer, x, y


def _numpy_mask_gradient(layer, x, y):
    kernel = layer.kernel_variable.numpy()
    mask = (layer.kernel_mask_score.numpy() > 0).astype("float32")
    pred = x @ (kernel * mask) + layer.bias.numpy()
    d_pred = 2.0 * (pred - y) / pred.size
    return (x.T @ d_pred) * kernel, pred


@pytest.mark.parametrize("normalize", [True, False])
def test_scl_straight_through_gradient(normalize):
    penalty = 0.25
    model, layer, x, y = _learned_dense(normalize, penalty)
    expected_grad, expected_pred = _numpy_mask_gradient(layer, x, y)
    np.testing.assert_allclose(
        np.asarray(model(x)), expected_pred, rtol=1e-5, atol=1e-5
    )
    _, (grad,) = loss_and_gradients(
        model, [layer.kernel_mask_score], x, y, "mse"
    )
    if normalize:
        rms = np.sqrt(np.mean(expected_grad**2, axis=0, keepdims=True))
        expected_grad = expected_grad / rms
    np.testing.assert_allclose(grad, expected_grad + penalty, rtol=1e-4)


def test_scl_frozen_mask_gets_no_gradient_and_uses_kernel_mask():
    model, layer, x, y = _learned_dense(True, 0.25)
    fixed = np.zeros((5, 3), "float32")
    fixed[:, 0] = 1.0
    layer.kernel_mask.assign(fixed)
    layer.mask_frozen.assign(1.0)
    _, (grad,) = loss_and_gradients(
        model, [layer.kernel_mask_score], x, y, "mse"
    )
    np.testing.assert_array_equal(grad, np.zeros_like(grad))
    kernel = layer.kernel_variable.numpy()
    expected = x @ (kernel * fixed) + layer.bias.numpy()
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-5)
    np.testing.assert_array_equal(layer.current_mask(), fixed)
