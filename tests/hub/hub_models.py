"""Small keras-hub backbones built from their constructors (no weights).

Each builder returns a backbone with random weights and few channels, so
the proof tests on keras-hub run in seconds; `HUB_MODELS` maps a short
name to its builder. The default `image_shape=(None, None, 3)` is kept
where the backbone allows it: the tests cost those models with
`input_shape=`.
"""

import keras

SIZE = 32


def resnet_v1():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[16],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[2, 1],
        stackwise_num_strides=[1, 2],
        block_type="bottleneck_block",
        use_pre_activation=False,
    )


def resnet_v2():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[2, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=True,
    )


def mobilenet_v3():
    import keras_hub

    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[32, 48], [64, 64]],
        stackwise_num_blocks=[2, 2],
        stackwise_num_filters=[[16, 16], [24, 24]],
        stackwise_kernel_size=[[3, 3], [5, 5]],
        stackwise_num_strides=[[2, 1], [2, 1]],
        stackwise_se_ratio=[[None, None], [0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1, 1], [2, 2]],
        output_num_filters=64,
        depthwise_filters=16,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=64,
        squeeze_and_excite=0.5,
        input_num_filters=16,
        image_shape=(SIZE, SIZE, 3),
    )


def efficientnet_v2():
    import keras_hub

    return keras_hub.models.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3, 3, 3],
        stackwise_num_repeats=[1, 2, 1, 2],
        stackwise_input_filters=[16, 16, 24, 32],
        stackwise_output_filters=[16, 24, 32, 48],
        stackwise_expansion_ratios=[1, 4, 4, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.0, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 1],
        stackwise_block_types=["fused", "fused", "unfused", "unfused"],
        stackwise_width_coefficients=[1.0] * 4,
        stackwise_depth_coefficients=[1.0] * 4,
        num_features=64,
        input_shape=(SIZE, SIZE, 3),
    )


def cspnet():
    import keras_hub

    # CSP-ResNet-50's layout (cross-stage split with `ops.split` on the
    # channel axis), narrowed.
    return keras_hub.models.CSPNetBackbone(
        stem_filters=16,
        stem_kernel_size=3,
        stem_strides=4,
        stackwise_depth=[1, 2],
        stackwise_strides=[1, 2],
        stackwise_num_filters=[32, 64],
        block_type="bottleneck_block",
        stage_type="csp",
        bottle_ratio=[0.5],
        block_ratio=[1.0],
        expand_ratio=[2.0],
        stem_pooling="max",
        cross_linear=True,
    )


def densenet():
    import keras_hub

    return keras_hub.models.DenseNetBackbone(
        stackwise_num_repeats=[2, 2], growth_rate=8
    )


def vgg():
    import keras_hub

    return keras_hub.models.VGGBackbone(
        stackwise_num_repeats=[1, 2],
        stackwise_num_filters=[16, 32],
        image_shape=(SIZE, SIZE, 3),
    )


def deeplab_v3():
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16, 32],
        stackwise_num_blocks=[1, 1, 1],
        stackwise_num_strides=[1, 2, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    return keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P4",
        upsampling_size=4,
        dilation_rates=[1, 2],
        low_level_feature_key="P2",
        projection_filters=16,
        image_shape=(SIZE, SIZE, 3),
    )


HUB_MODELS = {
    "resnet_v1": resnet_v1,
    "resnet_v2": resnet_v2,
    "mobilenet_v3": mobilenet_v3,
    "efficientnet_v2": efficientnet_v2,
    "cspnet": cspnet,
    "densenet": densenet,
    "vgg": vgg,
    "deeplab_v3": deeplab_v3,
}


def build(name):
    """Builds `HUB_MODELS[name]` with a fixed seed."""
    keras.utils.set_random_seed(0)
    return HUB_MODELS[name]()


def reach_table(names=None):
    """Rows `(name, groups, prunable, flops, flops_half, reach)` measured
    at `SIZE`x`SIZE` with every prunable group keeping half its channels."""
    import keras_neuronprune
    from keras_neuronprune.rewrite import uniform_keep

    shape = (SIZE, SIZE, 3)
    rows = []
    for name in names or HUB_MODELS:
        model = build(name)
        groups = keras_neuronprune.channel_groups(model)
        thin, _ = keras_neuronprune.thin_model(
            model, uniform_keep(model, 0.5, groups=groups)
        )
        before = keras_neuronprune.count_cost(model, input_shape=shape).flops
        after = keras_neuronprune.count_cost(thin, input_shape=shape).flops
        prunable = sum(g.prunable for g in groups)
        rows.append(
            (name, len(groups), prunable, before, after, 1 - after / before)
        )
    return rows


if __name__ == "__main__":
    import sys

    print("| backbone | groups | prunable | FLOPs | FLOPs at half | reach |")
    print("|---|---|---|---|---|---|")
    for row in reach_table(sys.argv[1:]):
        name, n, p, before, after, r = row
        print(f"| {name} | {n} | {p} | {before:,} | {after:,} | {r:.2f} |")
