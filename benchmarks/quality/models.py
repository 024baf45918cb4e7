"""Models of the quality benchmark: CIFAR-style VGG-BN and CIFAR ResNets.

Names (`--models`): `vgg11`, `vgg13`, `vgg16`, `vgg19` (the VGG
configurations of Simonyan & Zisserman with BatchNorm after every
convolution, global average pooling and one Dense classifier, as in the
Network Slimming / RNI CIFAR code), `resnet<6n+2>` (`resnet20`,
`resnet56`...: He et al.'s CIFAR ResNet, 16/32/64 channels, shortcuts that
change shape are 1x1 convolution + BN, "option B", so every stream is
prunable) and `vgg-tiny` / `resnet8` for `--quick`. `--width` scales every
layer's channels.
"""

import re

_VGG = {
    "vgg-tiny": "8 M 16 M 16 32",
    "vgg11": "64 M 128 M 256 256 M 512 512 M 512 512",
    "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512",
    "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512",
    "vgg19": "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M "
    "512 512 512 512",
}
# Channels per convolution, "M" for a 2x2 max pooling.
VGG_CONFIGS = {
    name: [v if v == "M" else int(v) for v in text.split()]
    for name, text in _VGG.items()
}

SHORTCUT = "1x1 convolution + BN where the shape changes (option B)"


def check_model_name(name):
    if name in VGG_CONFIGS:
        return
    match = re.fullmatch(r"resnet(\d+)", name)
    if match and (int(match.group(1)) - 2) % 6 == 0 and int(match.group(1)) > 2:
        return
    raise ValueError(
        "`--models` entries must be vgg-tiny, vgg11, vgg13, vgg16, vgg19 or "
        f"resnet<6n+2> (resnet20, resnet56). Received: {name!r}"
    )


def build_model(name, input_shape, classes, width=1.0):
    """A fresh (randomly initialised) Keras model."""
    check_model_name(name)
    if name in VGG_CONFIGS:
        return build_vgg(VGG_CONFIGS[name], input_shape, classes, width, name)
    from benchmarks._examples import load_example

    depth = int(name[len("resnet") :])
    return load_example("prune_cifar10_rni").build_resnet(
        depth, max(1, int(round(16 * width))), classes, input_shape
    )


def build_vgg(config, input_shape, classes, width=1.0, name="vgg"):
    """Conv3x3-BN-ReLU stacks with max pooling, GAP and a Dense head."""
    import keras

    bn = {"momentum": 0.9, "epsilon": 1e-5}
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    conv, pool = 0, 0
    for item in config:
        if item == "M":
            pool += 1
            # "same" pooling keeps 28x28 inputs (Fashion-MNIST) valid.
            x = keras.layers.MaxPooling2D(
                2, padding="same", name=f"pool{pool}"
            )(x)
            continue
        conv += 1
        x = keras.layers.Conv2D(
            max(1, int(round(item * width))),
            3,
            padding="same",
            use_bias=False,
            name=f"conv{conv}",
        )(x)
        x = keras.layers.BatchNormalization(**bn, name=f"bn{conv}")(x)
        x = keras.layers.ReLU(name=f"relu{conv}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name.replace("-", "_"))
