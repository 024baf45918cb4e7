"""No function in the package is over 120 lines, docstring aside (#10)."""

import ast
import pathlib

import keras_neuronprune

LIMIT = 120
PACKAGE = pathlib.Path(keras_neuronprune.__file__).parent


def function_lengths(source):
    """(name, first line, lines without the docstring) of every function."""
    rows = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(
            getattr(first, "value", None), ast.Constant
        ):
            if isinstance(first.value.value, str):
                length -= first.end_lineno - first.lineno + 1
        rows.append((node.name, node.lineno, length))
    return rows


def test_function_lengths_counts_code_not_docstrings():
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    source = f'def f():\n    """Doc.\n\n    More.\n    """\n{body}\n'
    assert function_lengths(source) == [("f", 1, 6)]


def test_no_function_over_the_limit():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, line, length in function_lengths(path.read_text()):
            if length > LIMIT:
                rel = path.relative_to(PACKAGE)
                long.append(f"{rel}:{line} {name} ({length} lines)")
    assert not long, f"functions over {LIMIT} lines: {long}"
