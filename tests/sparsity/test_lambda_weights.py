"""Weight sparsity on a model with a `Lambda` layer (issue 11, bad input).

Rebuilding a Lambda from its config deserialises its Python function, which
Keras' safe mode refuses; the shared clone code reuses the Lambda object.
"""

import keras
import numpy as np

from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.core.surgery import clone_layer_from_config
from keras_neuronprune.sparsity import prune_weights
from keras_neuronprune.sparsity import strip_weight_pruning


def _lambda_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="d1")(inputs)
    x = keras.layers.Lambda(lambda t: 2.0 * t + 1.0, name="affine")(x)
    outputs = keras.layers.Dense(3, name="d2")(x)
    return keras.Model(inputs, outputs)


def test_clone_reuses_lambda_and_rebuilds_other_layers():
    model = _lambda_model()
    lam = model.get_layer("affine")
    assert clone_layer_from_config(lam) is lam
    dense = model.get_layer("d1")
    assert clone_layer_from_config(dense) is not dense


def test_lambda_model_prune_fit_strip_matches_masked_model():
    model = _lambda_model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8)).astype("float32")
    y = rng.integers(0, 3, 32)
    pruned = prune_weights(model, sparsity=0.5)
    assert pruned.get_layer("affine") is model.get_layer("affine")
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(
        x, y, epochs=1, batch_size=16, verbose=0, callbacks=[UpdatePruning()]
    )
    stripped = strip_weight_pruning(pruned)
    masked = np.asarray(pruned(x, training=False))
    plain = np.asarray(stripped(x, training=False))
    np.testing.assert_allclose(plain, masked, rtol=1e-5, atol=1e-5)
    kernel = np.asarray(stripped.get_layer("d1").kernel)
    assert abs(float(np.mean(kernel == 0)) - 0.5) < 0.05
    assert isinstance(stripped.get_layer("affine"), keras.layers.Lambda)
