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
    err = capsys.readouterr().err
    assert "--quantization int8 needs --representative-data" in err
    assert len(err.strip().splitlines()) == 1

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


def test_corrupt_model_file_is_a_failure_not_not_found(saved_model, capsys):
    broken = saved_model / "broken.keras"
    broken.write_bytes((saved_model / "model.keras").read_bytes()[:1500])
    args = _parse(["export", str(broken), "-o", str(saved_model / "b.tflite")])
    assert run_export(args) == 1
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated" in err
    assert "not found" not in err
    assert len(err.splitlines()) == 1


def test_parity_failure_names_the_flag_to_relax(saved_model, capsys):
    args = _parse(
        [
            "export",
            str(saved_model / "model.keras"),
            "--quantization",
            "int8",
            "--representative-data",
            str(saved_model / "calib.npy"),
            "--tolerance",
            "1e-9",
            "-o",
            str(saved_model / "strict.tflite"),
        ]
    )
    assert run_export(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "> allowed 1e-09" in err
    assert "relax --tolerance (now 1e-09)" in err
    assert not (saved_model / "strict.tflite").exists()


def test_bad_values_exit_2_with_one_line(saved_model, capsys):
    model = str(saved_model / "model.keras")
    for argv, needle in (
        (["--num-samples", "0"], "--num-samples 0"),
        (["--min-top1-agreement", "2"], "--min-top1-agreement 2"),
        (["--int8-io"], "--int8-io needs --quantization int8"),
        (["--representative-data", "nope.npy"], "'nope.npy'"),
    ):
        args = _parse(
            ["export", model, "-o", str(saved_model / "y.tflite")] + argv
        )
        assert run_export(args) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
