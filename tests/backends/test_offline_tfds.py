"""`--data tfds` without a local copy fails at once, in one line, cleanly."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def test_tfds_offline_fails_fast_with_one_line_and_leaves_nothing(tmp_path):
    empty = tmp_path / "tfds"
    empty.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    env.pop("TFDS_DATA_DIR", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "prune_cifar10_rni.py"),
            "--data",
            "tfds",
            "--tfds-data-dir",
            str(empty),
            "--output-dir",
            str(work / "out"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "not available offline" in lines[0]
    assert "--tfds-data-dir" in lines[0] and str(empty) in lines[0]
    assert "Traceback" not in proc.stderr
    # No Keras/TF import happened, nothing was downloaded or created.
    assert elapsed < 30, elapsed
    assert list(work.iterdir()) == []
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "home").exists()
