"""Model builders for the built-in benchmark suite.

All models are built with random weights (`weights=None`): latency does not
depend on the weight values, and nothing is downloaded.
"""

FULL_SUITE = ("mobilenetv2", "resnet50", "efficientnetb0", "resnet20")
QUICK_SUITE = ("resnet20", "mobilenetv2")


def resnet20(input_shape=(32, 32, 3), num_classes=10, width=16, name=None):
    """A CIFAR-size ResNet-20 (He et al. 2016, section 4.2).

    Three stages of three basic blocks (two 3x3 conv + BN), widths
    `width`, 2x`width`, 4x`width`, with 1x1-conv projection shortcuts where
    the shape changes (option B), then global average pooling and a
    classifier. ~0.27 M parameters and ~41 M MACs at 32x32.

    Reference:
        Deep Residual Learning for Image Recognition,
        https://arxiv.org/abs/1512.03385
    """
    import keras
    from keras import layers

    def conv_bn(x, filters, stride, name, relu=True):
        x = layers.Conv2D(
            filters,
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            name=f"{name}_conv",
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        if relu:
            x = layers.ReLU(name=f"{name}_relu")(x)
        return x

    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, width, 1, "stem")
    for stage in range(3):
        filters = width * 2**stage
        for block in range(3):
            stride = 2 if (stage > 0 and block == 0) else 1
            prefix = f"s{stage + 1}b{block + 1}"
            shortcut = x
            y = conv_bn(x, filters, stride, f"{prefix}_a")
            y = conv_bn(y, filters, 1, f"{prefix}_b", relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(
                    filters,
                    1,
                    strides=stride,
                    use_bias=False,
                    name=f"{prefix}_proj_conv",
                )(shortcut)
                shortcut = layers.BatchNormalization(name=f"{prefix}_proj_bn")(
                    shortcut
                )
            x = layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = layers.ReLU(name=f"{prefix}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or "resnet20")


def calibrate_batchnorm(model, num_samples=8, seed=0):
    """Sets every BatchNormalization's moving statistics from data.

    Freshly initialised networks (moving mean 0, variance 1) let activations
    vanish or explode with depth: random MobileNetV2 / EfficientNetB0
    logits are ~1e-12, which makes any numerics check vacuous. One forward
    pass in training mode normalises every BN layer with its batch
    statistics; copying those statistics into the moving averages makes
    inference behave the same way, so the logits have a useful scale.
    Latency does not change.

    Args:
        model: a functional model (modified in place).
        num_samples: random normal images used for the statistics.
        seed: their seed.

    Returns:
        The model.
    """
    import keras
    import numpy as np

    bns = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not bns:
        return model
    probe = keras.Model(model.inputs, [bn.input for bn in bns])
    shape = (num_samples,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    feats = probe([x], training=True)
    for bn, f in zip(bns, feats):
        f = keras.ops.convert_to_numpy(f)
        axes = tuple(i for i in range(f.ndim) if i != (bn.axis % f.ndim))
        bn.moving_mean.assign(f.mean(axis=axes))
        bn.moving_variance.assign(f.var(axis=axes))
    return model


def build(name, resolution=None, quick=False):
    """Builds a suite model by name.

    Args:
        name: "mobilenetv2", "resnet50", "efficientnetb0" or "resnet20".
        resolution: input height/width; default 224 (32 for resnet20). In
            quick mode the ImageNet models use 64x64 and MobileNetV2 uses
            width multiplier 0.35.
        quick: small, fast variants for CI.

    Returns:
        (keras.Model, description str)
    """
    import keras

    if name == "resnet20":
        res = resolution or 32
        model = calibrate_batchnorm(resnet20((res, res, 3)))
        return model, f"ResNet-20 (CIFAR) {res}x{res}"
    res = resolution or (64 if quick else 224)
    # Logits (no softmax): a softmax over 1000 classes squashes differences
    # and would weaken the numerics check.
    common = dict(
        weights=None, input_shape=(res, res, 3), classifier_activation=None
    )
    if name == "mobilenetv2":
        alpha = 0.35 if quick else 1.0
        model = keras.applications.MobileNetV2(alpha=alpha, **common)
        desc = f"MobileNetV2 alpha={alpha} {res}x{res}"
    elif name == "resnet50":
        model = keras.applications.ResNet50(**common)
        desc = f"ResNet50 {res}x{res}"
    elif name == "efficientnetb0":
        model = keras.applications.EfficientNetB0(**common)
        desc = f"EfficientNetB0 {res}x{res}"
    else:
        raise ValueError(
            f"Unknown suite model. Expected one of {FULL_SUITE}. "
            f"Received: name={name!r}"
        )
    return calibrate_batchnorm(model), desc
