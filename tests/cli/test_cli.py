"""The `keras-neuronprune` command line: inspect, thin, demo, exit codes."""

import os
import shlex
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_neuronprune import channel_groups
from keras_neuronprune import cli
from keras_neuronprune.rewrite import thin_model
from keras_neuronprune.rewrite import uniform_keep


def _tiny(path):
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.save(path)
    return model


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.keras"
    _tiny(str(path))
    return path


def test_inspect_leads_with_totals_and_disjoint_counts(capsys):
    assert cli.main(["inspect", "MobileNet", "--input-size", "32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "parameters" in out[0] and "FLOPs" in out[0]
    assert "," in out[0]  # thousands separators
    header = out[1]
    numbers = [int(w) for w in header.replace(",", " ").split() if w.isdigit()]
    total, prunable = numbers[0], numbers[1]
    blocked = int(header.rsplit(", ", 1)[1].split()[0])
    assert total == prunable + blocked  # no group counted twice
    assert any("it is a model input" in line for line in out)


def test_inspect_uses_the_standard_input_size(capsys):
    assert cli.main(["inspect", "MobileNet", "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "(224x224x3)" in first
    assert cli.main(["inspect", "MobileNet", "--input-shape", "96,96,3"]) == 0
    assert "(96x96x3)" in capsys.readouterr().out.splitlines()[0]


def test_inspect_counts_inexact_groups_once(capsys):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(6, name="d1")(inputs)
    x = keras.layers.LayerNormalization(name="ln")(x)
    x = keras.layers.Dense(6, name="d2")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs, name="ln_net")
    groups = channel_groups(model)
    lines = cli.format_groups(groups)
    prunable, inexact, blocked = cli.classify_groups(groups)
    assert len(prunable) + len(inexact) + len(blocked) == len(groups)
    assert len(inexact) == 1
    assert "1 inexact (prunable with --allow-inexact)" in lines[0]


def test_thin_writes_a_smaller_loadable_model(tmp_path, capsys):
    path = str(tmp_path / "thin.keras")
    argv = ["thin", "MobileNet", "--input-size", "32", "--ratio", "0.5"]
    assert cli.main(argv + ["--round-to", "8", "--output", path]) == 0
    thin = keras.models.load_model(path)
    full = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3))
    assert thin.count_params() < 0.5 * full.count_params()
    conv_widths = [
        layer.filters
        for layer in thin.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.name != "conv_preds"
    ]
    assert all(w % 8 == 0 for w in conv_widths), conv_widths
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("mobilenet") and "parameters" in lines[0]
    assert "channel groups thinned" in lines[1]
    assert len(lines) < 30  # compact; --layers gives the full table
    assert f"export {path} --format tflite" in lines[-1]


def test_thin_layers_flag_prints_every_changed_layer(tiny_file, tmp_path):
    out = tmp_path / "t.keras"
    proc = subprocess.run(
        [sys.executable, "-m", "keras_neuronprune", "thin", str(tiny_file)]
        + ["--ratio", "0.5", "--output", str(out), "--layers", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "conv1" in proc.stdout and "bn1" in proc.stdout
    assert "8 -> 4" in proc.stdout


def test_report_summary_and_table():
    model = _tiny_model()
    thin, report = thin_model(model, uniform_keep(model, 0.5))
    text = str(report)
    assert text.splitlines()[0].startswith("tiny: parameters")
    assert "2 channel groups thinned: 16 -> 8 channels" in text
    table = report.table()
    assert "conv1" in table and "bn1" in table
    assert table.splitlines()[-1].startswith("total tiny: parameters")
    assert report.to_dict()["groups"][0]["channels_after"] == 4


def _tiny_model():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.mark.parametrize(
    "argv,code,needle",
    [
        (["inspect", "NotANet"], 2, "model='NotANet'"),
        (["inspect", "MobilenetV2"], 2, "did you mean MobileNetV2"),
        (["inspect", "missing.keras"], 2, "model file not found"),
        (["inspect", "MobileNet", "--input-shape", "a,b"], 2, "--input-shape"),
        (
            ["thin", "MobileNet", "--ratio", "1.5", "--output", "x.keras"],
            2,
            "--ratio 1.5",
        ),
        (
            [
                "thin",
                "MobileNet",
                "--ratio",
                "0.5",
                "--round-to",
                "0",
                "--output",
                "x.keras",
            ],
            2,
            "--round-to 0",
        ),
        (
            ["thin", "MobileNet", "--ratio", "0.5", "--output", "x.txt"],
            2,
            "--output",
        ),
        (["thin", "MobileNet"], 2, "required: --pruning-ratio, --output"),
        (["thin", "MobileNet", "--ratio", "0.5"], 2, "required: --output"),
        (
            ["thin", "MobileNet", "--pruning-ratio", "1.5", "--output", "x"],
            2,
            "--pruning-ratio 1.5",
        ),
        (["demo", "--pruning-ratio", "2"], 2, "--pruning-ratio=2.0"),
        (["frobnicate"], 2, "invalid choice"),
        (["demo", "--criterion", "foo"], 2, "--criterion='foo'"),
        (["demo", "--ratio", "2"], 2, "--ratio=2.0"),
    ],
)
def test_errors_are_one_line_with_exit_status(argv, code, needle, capsys):
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err, err
    assert err.startswith("keras-neuronprune")


def test_renamed_flags_give_the_same_model_and_one_notice_each(
    tiny_file, tmp_path, capsys
):
    new, old = str(tmp_path / "new.keras"), str(tmp_path / "old.keras")
    argv = ["thin", str(tiny_file), "--quiet"]
    assert cli.main(argv + ["--pruning-ratio", "0.5", "--output", new]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(argv + ["--ratio", "0.5", "--layers", "--output", old]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "keras-neuronprune thin: warning: --ratio is deprecated; use "
        "--pruning-ratio",
        "keras-neuronprune thin: warning: --layers is deprecated; use "
        "--per-layer",
    ]
    assert "8 -> 4" in captured.out  # --layers still gives the table
    widths = [
        [w.shape for w in keras.models.load_model(path).get_weights()]
        for path in (new, old)
    ]
    assert widths[0] == widths[1]
    # An error stays one line, with the notice in it.
    assert cli.main(argv + ["--ratio", "2", "--output", old]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--ratio 2.0" in err and "--ratio is deprecated" in err


def test_help_lists_the_new_flags_only(capsys):
    for command in ("thin", "inspect", "demo"):
        assert cli.main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "--per-layer" in out or command == "demo"
        assert "--pruning-ratio" in out or command == "inspect"
        assert "--ratio" not in out and "--layers" not in out


def test_inspect_per_layer_flag(tiny_file, capsys):
    assert cli.main(["inspect", str(tiny_file), "--quiet"]) == 0
    short = capsys.readouterr().out
    assert "(--per-layer adds the per-layer cost table)" in short
    assert cli.main(["inspect", str(tiny_file), "--per-layer"]) == 0
    full = capsys.readouterr().out
    assert "--per-layer adds" not in full and len(full) > len(short)


def test_corrupt_keras_file_is_reported_as_corrupt(tiny_file, tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(tiny_file.read_bytes()[:2000])
    assert cli.main(["inspect", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated" in err and "not found" not in err
    assert len(err.splitlines()) == 1
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"PK\x03\x04" + np.arange(50, dtype="uint8").tobytes())
    assert cli.main(["inspect", str(garbage)]) == 1
    assert "corrupt" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert cli.main(["--help"]) == 0
    assert "Exit status" in capsys.readouterr().out


def test_demo_exits_zero_and_prints_the_next_command(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "keras_neuronprune", "demo", "--smoke"]
        + ["--output-dir", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "pruned.keras").exists() and (out / "calib.npy").exists()
    last = proc.stdout.strip().splitlines()[-1].strip()
    assert last.startswith("keras-neuronprune export ")
    assert str(out / "pruned.keras") in last
    assert "--representative-data" in last
    # The command it prints runs as printed.
    assert cli.main(shlex.split(last)[1:]) == 0
    assert (out / "pruned_int8.tflite").exists()
