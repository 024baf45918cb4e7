import argparse
import importlib.util
import json
import os
import tarfile

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _example():
    path = os.path.join(ROOT, "examples", "prune_cifar10_rni.py")
    spec = importlib.util.spec_from_file_location("prune_cifar10_rni", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_images(root, rng):
    from PIL import Image

    expected = {}
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("bird", "airplane"):  # listed out of order on purpose
            folder = os.path.join(root, split, cls)
            os.makedirs(folder)
            for i in range(count):
                pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
                expected[(split, cls, i)] = pixels
    return expected


def test_image_folder_and_tar_loaders(tmp_path):
    example = _example()
    expected = _write_images(str(tmp_path / "imgs"), np.random.default_rng(0))
    (x_tr, y_tr, x_te, y_te), classes = example.load_image_folder(
        str(tmp_path / "imgs")
    )
    assert classes == ["airplane", "bird"]
    assert x_tr.shape == (6, 4, 4, 3) and x_te.shape == (4, 4, 4, 3)
    np.testing.assert_array_equal(y_tr, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(
        x_tr[3], expected[("train", "bird", 0)] / 255.0, atol=1e-6
    )
    tar_path = str(tmp_path / "imgs.tar")
    with tarfile.open(tar_path, "w") as archive:
        archive.add(str(tmp_path / "imgs"), arcname="cifar")
    data = example.load_data(tar_path, limit_per_class=2)
    assert data[0].shape == (4, 4, 4, 3)
    np.testing.assert_array_equal(data[1], [0, 0, 1, 1])
    np.testing.assert_allclose(data[0][2], x_tr[3], atol=1e-6)
    limited = example.load_data(str(tmp_path / "imgs"), limit_per_class=1)
    np.testing.assert_array_equal(limited[3], [0, 1])


def test_npz_loader_and_errors(tmp_path):
    example = _example()
    rng = np.random.default_rng(1)
    path = str(tmp_path / "d.npz")
    np.savez(
        path,
        x_train=rng.integers(0, 256, (6, 5, 5), dtype=np.uint8),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=rng.integers(0, 256, (3, 5, 5), dtype=np.uint8),
        y_test=np.array([[2], [1], [0]]),
    )
    x_tr, y_tr, x_te, y_te = example.load_data(path)
    assert x_tr.shape == (6, 5, 5, 1) and x_tr.dtype == np.float32
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    np.testing.assert_array_equal(y_te, [2, 1, 0])
    assert len(example.load_data(path, limit_per_class=1)[0]) == 3
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="x_train"):
        example.load_data(bad)
    with pytest.raises(ValueError, match="does not exist"):
        example.load_data(str(tmp_path / "missing"))
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="tensorflow-datasets"):
            example.load_data("tfds")


def test_augmentation_keeps_shapes_and_labels():
    example = _example()
    x, y, _, _ = example.synthetic_data(20, 4, size=8)
    batches = example.AugmentedBatches(x, y, batch_size=8).sequence
    assert len(batches) == 3
    xb, yb = batches[0]
    assert xb.shape == (8, 8, 8, 3) and yb.shape == (8,)
    order = [y[i] for i in sorted(range(20))]
    assert sorted(np.concatenate([batches[i][1] for i in range(3)])) == sorted(
        order
    )


def test_cifar_example_smoke(tmp_path):
    example = _example()
    result = example.main(["--smoke", "--output-dir", str(tmp_path)])
    assert result["final_params"] < result["base_params"]
    assert result["final_flops"] < result["base_flops"]
    with open(tmp_path / "result.json") as f:
        assert json.load(f)["final_params"] == result["final_params"]
    loaded = keras.models.load_model(result["model"])
    assert loaded.count_params() == result["final_params"]


def test_demo_smoke_and_parser(tmp_path):
    from keras_neuronprune import demo

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    demo.add_demo_parser(sub)
    args = parser.parse_args(["demo", "--smoke", "--output-dir", str(tmp_path)])
    assert args.func is demo.run_demo
    result = args.func(args)
    assert result["final_params"] < result["base_params"]
    assert result["final_flops"] < result["base_flops"]
    assert set(result["channels_after"]) == set(result["channels_before"])
    assert (
        result["channels_after"]["conv2"] < result["channels_before"]["conv2"]
    )
    with open(result["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    loaded = keras.models.load_model(result["model"])
    assert all(
        type(layer).__module__.startswith("keras.") for layer in loaded.layers
    )
    with pytest.raises(ValueError, match="ratio=1.5"):
        demo.run_demo(["--smoke", "--ratio", "1.5"])


def test_demo_table_formatting():
    from keras_neuronprune.demo import _format_table

    text = _format_table([("", "a", "b"), ("x", 1, 22)])
    assert text.splitlines()[1].startswith("-")
    assert text.splitlines()[2].endswith("22")
