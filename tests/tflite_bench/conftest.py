"""Shared fixtures of the tflite_bench tests."""

import json
import os
import sys

import pytest

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """Puts a fake `adb` on PATH that replays recorded benchmark output."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "adb"
    script.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" "{os.path.join(DATA, "fake_adb.py")}" '
        '"$@"\n'
    )
    script.chmod(0o755)
    log = tmp_path / "adb_log.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv(
        "FAKE_ADB_CPU", os.path.join(DATA, "benchmark_model_cpu.txt")
    )
    monkeypatch.setenv(
        "FAKE_ADB_GPU", os.path.join(DATA, "benchmark_model_gpu.txt")
    )

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    return calls
