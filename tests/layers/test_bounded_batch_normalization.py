"""BoundedBatchNormalization: formula, moving statistics, gradient scale."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_neuronprune import layers as knp_layers
from keras_neuronprune import regularizers as knp_regularizers

RNG = np.random.default_rng(1)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_bbn(x, gamma, mean, var, eps, beta=None, mask=None):
    scale = _sigmoid(gamma) * (1.0 if mask is None else mask)
    y = (x - mean) / np.sqrt(var + eps) * scale
    if beta is not None:
        y = y + beta * (1.0 if mask is None else mask)
    return y


def test_alias_is_same_class():
    assert knp_layers.BoundedBatchNorm is knp_layers.BoundedBatchNormalization
    assert issubclass(
        knp_layers.BoundedBatchNorm, keras.layers.BatchNormalization
    )


@pytest.mark.parametrize("center", [False, True])
def test_formula_training_and_inference(center):
    layer = knp_layers.BoundedBatchNormalization(center=center, momentum=0.9)
    x = RNG.normal(2.0, 3.0, size=(8, 4, 5)).astype("float32")
    layer.build(x.shape)
    gamma = RNG.normal(size=5).astype("float32")
    layer.gamma.assign(gamma)
    beta = None
    if center:
        beta = RNG.normal(size=5).astype("float32")
        layer.beta.assign(beta)
    assert [w.name for w in layer.weights][-1] == "channel_mask"
    assert not center or layer.beta is not None

    y = np.asarray(layer(x, training=True))
    mean, var = x.mean((0, 1)), x.var((0, 1))
    expected = _numpy_bbn(x, gamma, mean, var, layer.epsilon, beta)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.9 + 0.1 * var, rtol=1e-4
    )
    y = np.asarray(layer(x, training=False))
    expected = _numpy_bbn(
        x,
        gamma,
        layer.moving_mean.numpy(),
        layer.moving_variance.numpy(),
        layer.epsilon,
        beta,
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_moving_statistics_match_batch_normalization():
    x = RNG.normal(1.0, 2.0, size=(6, 3, 3, 4)).astype("float32")
    bounded = knp_layers.BoundedBatchNormalization(momentum=0.8)
    plain = keras.layers.BatchNormalization(momentum=0.8)
    for _ in range(3):
        bounded(x, training=True)
        plain(x, training=True)
    np.testing.assert_allclose(
        bounded.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        bounded.moving_variance.numpy(),
        plain.moving_variance.numpy(),
        rtol=1e-5,
    )


def test_channel_mask_zeroes_channel_exactly():
    layer = knp_layers.BoundedBatchNormalization(center=True)
    x = RNG.normal(size=(4, 3)).astype("float32")
    layer(x)
    layer.beta.assign([1.0, 2.0, 3.0])
    layer.set_output_mask([1, 0, 1])
    for training in (True, False):
        y = np.asarray(layer(x, training=training))
        assert np.all(y[:, 1] == 0) and np.all(y[:, 0] != 0)
    np.testing.assert_allclose(
        layer.importances(),
        _sigmoid(layer.gamma.numpy()) * [1, 0, 1],
        rtol=1e-6,
    )


def test_default_init_is_standard_normal_and_no_beta():
    layer = knp_layers.BoundedBatchNormalization()
    layer.build((None, 4000))
    gamma = layer.gamma.numpy()
    assert abs(gamma.mean()) < 0.1 and abs(gamma.std() - 1.0) < 0.1
    assert layer.beta is None
    assert layer.gamma_regularizer is None


def _gamma_grad(layer, x):
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        weights = tf.constant(np.arange(y.shape[-1]) + 1.0, tf.float32)
        # Squared: sum(x_hat) is 0 over the batch in training mode.
        loss = tf.reduce_sum(tf.square(y) * weights)
        loss = loss + tf.add_n(layer.losses) if layer.losses else loss
    return tape.gradient(loss, layer.gamma.value).numpy(), y.numpy()


def test_gradient_scale_multiplies_gradient_not_value():
    x = RNG.normal(size=(5, 3)).astype("float32") * 2 + 1
    gamma = np.array([0.3, -1.0, 2.0], "float32")
    grads, outs = [], []
    for scale in (1.0, 10.0):
        layer = knp_layers.BoundedBatchNormalization(gamma_gradient_scale=scale)
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        grad, out = _gamma_grad(layer, x)
        grads.append(grad)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(grads[1], 10.0 * grads[0], rtol=1e-5)


def test_regularizer_gradient_is_scaled_too():
    x = np.zeros((2, 3), "float32")  # loss term is 0: only the penalty
    gamma = np.array([-4.0, 0.0, 2.0], "float32")
    reg = knp_regularizers.RNIRegularizer(strength=1.0, shift=3.0)
    grads = []
    for scale in (1.0, 10.0):
        layer = knp_layers.BoundedBatchNormalization(
            gamma_gradient_scale=scale, gamma_regularizer=reg
        )
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        with tf.GradientTape() as tape:
            loss = tf.add_n(layer.losses)
        grads.append(tape.gradient(loss, layer.gamma.value).numpy())
    s = _sigmoid(gamma + 3.0)
    np.testing.assert_allclose(grads[0], -np.log(s) * s * (1 - s), rtol=1e-4)
    np.testing.assert_allclose(grads[1], 10 * grads[0], rtol=1e-5)


def test_set_gamma_regularizer_after_build_trains_and_serialises():
    layer = knp_layers.BoundedBatchNormalization()
    layer.build((None, 3))
    assert layer.losses == []
    layer.set_gamma_regularizer(knp_regularizers.RNIRegularizer())
    assert len(layer.losses) == 1
    config = layer.get_config()
    assert (
        config["gamma_regularizer"]["registered_name"]
        == "keras_neuronprune>RNIRegularizer"
    )
    clone = knp_layers.BoundedBatchNormalization.from_config(config)
    clone.build((None, 3))
    assert len(clone.losses) == 1


def test_config_round_trip_and_errors():
    layer = knp_layers.BoundedBatchNormalization(
        axis=1, center=True, gamma_gradient_scale=3.0, epsilon=1e-5
    )
    config = layer.get_config()
    assert "scale" not in config and "renorm" not in config
    assert config["gamma_gradient_scale"] == 3.0
    clone = knp_layers.BoundedBatchNormalization.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(ValueError, match="gamma_gradient_scale"):
        knp_layers.BoundedBatchNormalization(gamma_gradient_scale=0)


def _trained_bn(gamma, beta, axis=-1, shape=(6, 4, 3)):
    bn = keras.layers.BatchNormalization(axis=axis, epsilon=1e-5)
    x = RNG.normal(1.0, 2.0, size=shape).astype("float32")
    bn(x, training=True)
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    return bn, x


def test_from_batch_normalization_relative_mapping():
    gamma = np.array([0.5, 2.0, 1.0], "float32")
    beta = np.array([0.2, -0.4, 0.1], "float32")
    bn, x = _trained_bn(gamma, beta)
    bbn = knp_layers.BoundedBatchNormalization.from_batch_normalization(bn)
    assert bbn.name == bn.name and bbn.center and bbn.epsilon == 1e-5
    np.testing.assert_array_equal(
        bbn.moving_mean.numpy(), bn.moving_mean.numpy()
    )
    np.testing.assert_array_equal(
        bbn.moving_variance.numpy(), bn.moving_variance.numpy()
    )
    c = (1 - 1e-3) / 2.0
    np.testing.assert_allclose(bbn.importances(), gamma * c, rtol=1e-5)
    # Output is the original one times c = (1 - bound) / max|gamma|.
    np.testing.assert_allclose(
        np.asarray(bbn(x)), np.asarray(bn(x)) * c, rtol=1e-4, atol=1e-5
    )


def test_from_batch_normalization_clip_and_constant():
    gamma = np.array([0.25, 0.5, 0.75], "float32")
    beta = np.zeros(3, "float32")
    bn, x = _trained_bn(gamma, beta)
    cls = knp_layers.BoundedBatchNormalization
    exact = cls.from_batch_normalization(bn, gamma_mapping="clip")
    np.testing.assert_allclose(
        np.asarray(exact(x)), np.asarray(bn(x)), rtol=1e-4, atol=1e-5
    )
    fresh = cls.from_batch_normalization(
        bn, gamma_mapping="constant", center=False
    )
    np.testing.assert_allclose(fresh.importances(), 0.5)
    assert fresh.beta is None
    with pytest.raises(ValueError, match="gamma_mapping"):
        cls.from_batch_normalization(bn, gamma_mapping="other")
    with pytest.raises(TypeError, match="bn_layer"):
        cls.from_batch_normalization(keras.layers.Dense(2))
    with pytest.raises(ValueError, match="built"):
        cls.from_batch_normalization(keras.layers.BatchNormalization())


def test_from_masked_batch_normalization_carries_mask():
    mbn = knp_layers.MaskedBatchNormalization(axis=1)
    x = RNG.normal(size=(2, 3, 4, 4)).astype("float32")
    mbn(x, training=True)
    mbn.set_output_mask([1, 0, 1])
    bbn = knp_layers.BoundedBatchNormalization.from_batch_normalization(mbn)
    assert bbn.axis == 1
    np.testing.assert_array_equal(bbn.channel_mask.numpy(), [1, 0, 1])
    assert np.all(np.asarray(bbn(x))[:, 1] == 0)


def test_to_batch_normalization_is_exact():
    layer = knp_layers.BoundedBatchNormalization(center=True)
    x = RNG.normal(size=(5, 2, 4)).astype("float32")
    layer(x, training=True)
    layer.beta.assign(RNG.normal(size=4).astype("float32"))
    layer.set_output_mask([1, 1, 0, 1])
    plain = layer.to_batch_normalization()
    assert type(plain) is keras.layers.BatchNormalization
    np.testing.assert_allclose(
        np.asarray(plain(x)), np.asarray(layer(x)), rtol=1e-5, atol=1e-6
    )


def test_exclude_bounded_scales_from_weight_decay():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(3, name="d")(inputs)
    outputs = knp_layers.BoundedBatchNormalization(name="bbn")(hidden)
    model = keras.Model(inputs, outputs)
    assert knp_layers.bounded_scale_variables(model) == [
        model.get_layer("bbn").gamma
    ]
    optimizer = keras.optimizers.SGD(learning_rate=1.0, weight_decay=0.5)
    assert (
        knp_layers.exclude_bounded_scales_from_weight_decay(optimizer, model)
        == 1
    )
    gamma_before = model.get_layer("bbn").gamma.numpy().copy()
    kernel_before = model.get_layer("d").kernel.numpy().copy()
    variables = model.trainable_variables
    optimizer.apply(
        [np.zeros(v.shape, "float32") for v in variables], variables
    )
    np.testing.assert_array_equal(
        model.get_layer("bbn").gamma.numpy(), gamma_before
    )
    assert not np.allclose(model.get_layer("d").kernel.numpy(), kernel_before)
