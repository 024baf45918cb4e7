import argparse
import json

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tensorflow")

from keras_neuronprune.export.cli import add_export_parser  # noqa: E402
from keras_neuronprune.export.cli import run_export  # noqa: E402


def _parse(argv):
    parser = argparse.ArgumentParser(prog="keras-neuronprune")
    sub = parser.add_subparsers(dest="command")
    add_export_parser(sub)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, decisive_model, decisive_data):
    d = tmp_path_factory.mktemp("cli")
    path = d / "model.keras"
    decisive_model.save(path)
    np.save(d / "calib.npy", decisive_data[0])
    np.savez(d / "calib.npz", x_train=decisive_data[0], y_train=[0])
    return d


def test_int8_tflite_from_command_line(saved_model, capsys):
    out = saved_model / "m_int8.tflite"
    report = saved_model / "report.json"
    args = _parse(
        [
            "export",
            str(saved_model / "model.keras"),
            "--format",
            "tflite",
            "--quantization",
            "int8",
            "--representative-data",
            str(saved_model / "calib.npz"),
            "--num-samples",
            "40",
            "--output",
            str(out),
            "--json",
            str(report),
        ]
    )
    assert args.func is run_export
    assert run_export(args) == 0
    assert out.exists()
    data = json.loads(report.read_text())
    assert data["quantization"] == "int8"
    assert data["parity"]["passed"] is True
    assert data["parity"]["num_samples"] == 40
    assert "parity ok" in capsys.readouterr().out


def test_onnx_from_command_line(saved_model):
    out = saved_model / "m.onnx"
    args = _parse(
        [
            "export",
            str(saved_model / "model.keras"),
            "--format",
            "onnx",
            "--output",
            str(out),
            "--opset",
            "16",
        ]
    )
    assert run_export(args) == 0
    assert out.exists()


def test_cli_errors_have_exit_codes(saved_model, capsys):
    model = str(saved_model / "model.keras")
    args = _parse(
        [
            "export",
            model,
            "--quantization",
            "int8",
            "-o",
            str(saved_model / "x.tflite"),
        ]
    )
    assert run_export(args) == 2
    assert "representative_data" in capsys.readouterr().err

    args = _parse(["export", "missing.keras", "-o", "x.tflite"])
    assert run_export(args) == 2
    assert "not found" in capsys.readouterr().err

    args = _parse(
        [
            "export",
            model,
            "--format",
            "onnx",
            "--quantization",
            "int8",
            "-o",
            str(saved_model / "x.onnx"),
        ]
    )
    assert run_export(args) == 2

    with pytest.raises(SystemExit):
        _parse(["export", model, "--format", "coreml", "-o", "x"])
