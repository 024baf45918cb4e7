"""Thinning every keras.applications architecture is exact.

For each of the 40 architectures (weights=None, smallest accepted input, a
10-class logits head), a random keep set removes 30-60% of every prunable
group; the thin model must compute what the zero-masked reference computes,
have fewer params and FLOPs, and round-trip through a `.keras` file.
"""

import gc
import zlib

import keras
import pytest

import keras_neuronprune
from keras_neuronprune.testing import assert_thin_matches
from keras_neuronprune.testing import random_keep

# (architecture, input size, slow). Ordered from most to least expensive so
# that pytest-xdist workers finish at about the same time.
ZOO = [
    ("ConvNeXtXLarge", 32, True),
    ("ConvNeXtLarge", 32, True),
    ("NASNetLarge", 32, True),
    ("EfficientNetV2L", 32, True),
    ("EfficientNetB7", 32, True),
    ("InceptionResNetV2", 75, True),
    ("ConvNeXtBase", 32, True),
    ("EfficientNetV2M", 32, True),
    ("EfficientNetB6", 32, True),
    ("ResNet152V2", 32, True),
    ("ResNet152", 32, True),
    ("EfficientNetB5", 32, True),
    ("DenseNet201", 32, True),
    ("NASNetMobile", 32, True),
    ("ConvNeXtSmall", 32, True),
    ("ResNet101V2", 32, True),
    ("ResNet101", 32, True),
    ("DenseNet169", 32, True),
    ("EfficientNetB4", 32, True),
    ("EfficientNetV2S", 32, True),
    ("VGG19", 32, True),
    ("EfficientNetV2B3", 32, False),
    ("EfficientNetB3", 32, False),
    ("DenseNet121", 32, False),
    ("InceptionV3", 75, False),
    ("Xception", 71, False),
    ("ConvNeXtTiny", 32, False),
    ("ResNet50", 32, False),
    ("ResNet50V2", 32, False),
    ("EfficientNetV2B2", 32, False),
    ("EfficientNetV2B1", 32, False),
    ("EfficientNetB2", 32, False),
    ("EfficientNetB1", 32, False),
    ("EfficientNetV2B0", 32, False),
    ("EfficientNetB0", 32, False),
    ("VGG16", 32, False),
    ("MobileNetV3Large", 32, False),
    ("MobileNetV2", 32, False),
    ("MobileNetV3Small", 32, False),
    ("MobileNet", 32, False),
]

# Reasons a group of a keras.applications model may legitimately be blocked
# (anything else means a layer of the zoo has no handler).
_EXPECTED_BLOCKS = ("model input", "model output", "inexact", "single channel")


def _build(name, size):
    return getattr(keras.applications, name)(
        weights=None,
        input_shape=(size, size, 3),
        include_top=True,
        classes=10,
        classifier_activation=None,
    )


@pytest.fixture(autouse=True)
def _free_memory():
    yield
    keras.backend.clear_session()
    gc.collect()


def test_zoo_has_forty_architectures():
    names = [name for name, _, _ in ZOO]
    assert len(names) == len(set(names)) == 40
    for name in names:
        assert hasattr(keras.applications, name), name


@pytest.mark.parametrize(
    "name,size",
    [
        pytest.param(n, s, marks=[pytest.mark.slow] if slow else [], id=n)
        for n, s, slow in ZOO
    ],
)
def test_thin_application_matches_reference(name, size, tmp_path):
    model = _build(name, size)
    groups = keras_neuronprune.channel_groups(model)
    names = [g.name for g in groups]
    assert len(names) == len(set(names)), "group names are not unique"
    for g in groups:
        assert g.prunable or g.reason, f"group {g.name} blocked, no reason"
    prunable = [g for g in groups if g.prunable]
    assert prunable, "nothing prunable: " + "; ".join(
        sorted({str(g.reason) for g in groups})
    )
    assert all(g.exact for g in prunable)

    keep = random_keep(groups, rng=zlib.crc32(name.encode()))
    assert keep, "random_keep removed nothing"
    _, report = assert_thin_matches(
        model,
        keep,
        groups=groups,
        rtol=1e-4,
        scale_floor=1e-12,
        tmp_dir=str(tmp_path),
    )
    assert report.params_after < report.params_before
    assert report.flops_after < report.flops_before

    if name.startswith("ConvNeXt"):
        # The residual stream goes through LayerNormalization over channels.
        inexact = [g for g in groups if not g.exact]
        assert inexact and not any(g.prunable for g in inexact)
        assert any("allow_inexact" in g.reason for g in inexact)
    if name == "ConvNeXtTiny":
        # With the opt-in the residual stream is pruned too; the thin model
        # no longer equals the reference but must run with the same shapes.
        # (Only the smallest ConvNeXt: the others have the same blocks.)
        groups_i = keras_neuronprune.channel_groups(model, allow_inexact=True)
        keep_i = random_keep(groups_i, rng=1)
        assert len(keep_i) > len(keep)
        assert_thin_matches(
            model,
            keep_i,
            allow_inexact=True,
            groups=groups_i,
            exact=False,
            tmp_dir=str(tmp_path),
        )

    barriers = sorted(
        {
            g.reason
            for g in groups
            if not g.prunable
            and not any(s in g.reason for s in _EXPECTED_BLOCKS)
        }
    )
    assert not barriers, f"unexpected barriers in {name}: {barriers}"


def test_thin_nested_backbone(tmp_path):
    """The transfer-learning pattern: an application used as one layer."""
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    x = keras.Input((32, 32, 3))
    y = keras.layers.GlobalAveragePooling2D(name="gap")(base(x))
    y = keras.layers.Dropout(0.2, name="drop")(y)
    y = keras.layers.Dense(5, name="head")(y)
    model = keras.Model(x, y)
    groups = keras_neuronprune.channel_groups(model)
    keep = random_keep(groups, rng=0)
    nested = [n for n in keep if n.startswith(base.name + "/")]
    assert len(nested) > 10, sorted(keep)
    assert_thin_matches(
        model, keep, groups=groups, scale_floor=1e-12, tmp_dir=str(tmp_path)
    )
