"""README.md is a test: its Python and shell blocks run, in order.

Every ```python and ```bash block of README.md runs in one scratch folder,
in the order of the README, so a later block may use the files an earlier
one wrote (as a reader following along would). The Python blocks run with
`KNP_README_SMALL=1`, which the code shown reads to pick tiny sizes. Shell
commands run as written, with three documented exceptions that cannot run
inside the test suite:

- `pip install -e ".[extra]"`: the extra must exist in pyproject.toml and
  every package it names must be installed (no network in CI);
- `pytest ...`: that is this suite itself;
- `python -m MODULE ...` for the long benchmarks (tflite_bench,
  benchmarks.*): `python -m MODULE --help` must succeed and list every
  `--flag` the README passes.
"""

import importlib.metadata
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*\n(.*?)^```\s*$", re.S | re.M)
LONG_MODULES = ("tflite_bench", "benchmarks")


def readme_blocks(path=README):
    """`(language, code)` of every fenced python / bash block, in order."""
    text = path.read_text()
    return [
        (lang, code)
        for lang, code in FENCE.findall(text)
        if lang in ("python", "bash", "sh", "shell")
    ]


def shell_commands(code):
    """Commands of a shell block: continuations joined, comments removed."""
    joined = code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        commands.extend(part.strip() for part in line.split("&&"))
    return commands


def _env():
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["KNP_README_SMALL"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    return env


def _check_pip_install(argv):
    spec = argv[-1]
    match = re.fullmatch(r"\.\[(\w+)\]", spec)
    assert match, f"README installs {spec!r}; expected .[extra]"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    pending, seen = [match.group(1)], set()
    while pending:
        extra = pending.pop()
        assert extra in extras, f"pyproject.toml has no extra {extra!r}"
        seen.add(extra)
        for requirement in extras[extra]:
            name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0]
            inner = re.search(r"\[(.*?)\]", requirement)
            if name == "keras-neuronprune" and inner:
                pending += [
                    e for e in inner.group(1).split(",") if e not in seen
                ]
                continue
            importlib.metadata.version(name)  # raises when not installed


def _check_long_module(argv, env, cwd):
    module = argv[2]
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in [a for a in argv if a.startswith("--")]:
        assert flag.split("=")[0] in proc.stdout, f"{module} has no {flag}"


def run_shell(command, env, cwd):
    argv = shlex.split(command)
    if argv[:2] == ["pip", "install"]:
        return _check_pip_install(argv)
    if argv[0] == "pytest":
        return None
    if argv[:2] == ["python", "-m"] and argv[2].startswith(LONG_MODULES):
        return _check_long_module(argv, env, cwd)
    if argv[0] == "keras-neuronprune" and not shutil.which("keras-neuronprune"):
        argv = [sys.executable, "-m", "keras_neuronprune"] + argv[1:]
    elif argv[0] == "python":
        argv = [sys.executable] + argv[1:]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, (
        f"README command failed ({proc.returncode}): {command}\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def test_readme_blocks_parse():
    blocks = readme_blocks()
    assert any(lang == "python" for lang, _ in blocks)
    assert any(lang == "bash" for lang, _ in blocks)
    for lang, code in blocks:
        if lang == "python":
            compile(code, "README.md", "exec")


def test_shell_commands_split():
    code = "a --x 1 \\\n  --y 2   # note\n# only a comment\nb && c\n"
    assert shell_commands(code) == ["a --x 1    --y 2", "b", "c"]


def test_readme_runs(tmp_path):
    env = _env()
    ran = 0
    for lang, code in readme_blocks():
        if lang == "python":
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=600,
            )
            assert proc.returncode == 0, (
                "README Python block failed:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
            assert "parity ok" in proc.stdout
            assert "channel groups thinned" in proc.stdout
        else:
            for command in shell_commands(code):
                run_shell(command, env, tmp_path)
        ran += 1
    assert ran >= 4
    # The files the README promises exist where it says.
    for name in (
        "neuronprune_demo/pruned.keras",
        "neuronprune_demo/pruned_int8.tflite",
        "mobilenetv2_rni_int8.tflite",
        "mobilenetv2_half.tflite",
    ):
        assert (tmp_path / name).exists(), name


def test_docs_python_blocks_compile():
    # The docs' snippets are API sketches around a user's `model` and data;
    # each must at least be valid Python.
    compiled = 0
    for path in sorted((ROOT / "docs").glob("*.md")):
        for lang, code in readme_blocks(path):
            if lang == "python":
                assert compile(code, str(path), "exec") is not None
                compiled += 1
    assert compiled > 0


def test_docs_cost_block_runs_and_its_numbers_hold():
    (code,) = [c for lang, c in readme_blocks(ROOT / "docs" / "cost.md")]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    comment = re.search(
        r"print\(cost.params, cost.flops\)\s+# (\d+) (\d+)", code
    )
    assert proc.stdout.splitlines()[0] == f"{comment[1]} {comment[2]}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
