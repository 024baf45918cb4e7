"""count_cost against TensorFlow's profiler on keras.applications models.

TF's profiler (`tf.compat.v1.profiler.profile` with `float_operation()`)
also counts the per-channel arithmetic of batch normalization on its
variables (`rsqrt(var + eps) * gamma`, ...), which count_cost leaves out
because any inference converter folds it into constants. With those
constant-input ops removed the two counts are identical; the raw profiler
total is within 1%.
"""

import math

import keras
import pytest

from keras_neuronprune.cost import count_cost

tf_profiler = pytest.importorskip("tf_profiler_helper")

MODELS = [
    ("ResNet50", 32),
    ("MobileNetV2", 32),
    ("VGG16", 32),
    ("DenseNet121", 32),
    ("EfficientNetB0", 32),
    ("MobileNetV3Small", 32),
]


@pytest.mark.parametrize("name, size", MODELS, ids=[m[0] for m in MODELS])
def test_flops_agree_with_tf_profiler(name, size):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3)
    )
    cost = count_cost(model)
    total, foldable = tf_profiler.tf_profiler_flops(model)
    assert cost.uncounted == ()
    assert cost.params == model.count_params()
    assert abs(cost.flops - total) <= 0.01 * total
    assert abs(cost.flops - (total - foldable)) <= 1e-4 * total
    keras.backend.clear_session()


def test_frozen_and_live_graphs_give_the_same_profile():
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, use_bias=False)(x)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(2)(y))
    live = tf_profiler.tf_profiler_flops(model)
    frozen = tf_profiler.tf_profiler_flops(model, freeze=True)
    assert live == frozen
    assert count_cost(model).flops == live[0] - live[1]


def test_convnext_counts_every_layer():
    # TF's profiler cannot serve as reference here: Keras' TF backend runs
    # grouped convolutions in a nested function the profiler does not see.
    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(32, 32, 3)
    )
    cost = count_cost(model)
    assert cost.uncounted == ()
    assert cost.params == model.count_params()
    stem = [r for r in cost.layers if r.name.startswith("convnext_tiny_stem/")]
    assert [r.class_name for r in stem] == ["Conv2D", "LayerNormalization"]
    assert cost.flops_by_class()["LayerScale"] > 0


def test_inception_resnet_custom_scale_layer_is_counted():
    model = keras.applications.InceptionResNetV2(
        weights=None, input_shape=(75, 75, 3)
    )
    cost = count_cost(model)
    assert cost.uncounted == ()
    rows = [r for r in cost.layers if r.class_name == "CustomScaleLayer"]
    assert len(rows) == 40
    for row in rows:
        assert row.flops == 2 * math.prod(row.output_shape)
