"""The docs speak of the project alone (issue 14).

No machine paths, no remarks on who ran what or how loaded the machine
was: those belong in working notes, not in the documentation.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATTERNS = {
    "a machine path": r"/work/|/tmp/snap|/home/\w+/",
    "machine load": r"other jobs|(?:heavily|twice as|more) loaded|"
    r"(?:quiet|idle|busy) (?:machine|host)|machine was (?:busy|loaded)",
    "a session note": r"\bsession \d+\b|\bhelper-\d+\b|\bthe lead\b",
}


def doc_files():
    files = [ROOT / "README.md", ROOT / "tflite_bench" / "README.md"]
    return files + sorted((ROOT / "docs").rglob("*.md"))


def findings(text):
    """(what, matched text) for every forbidden remark in `text`."""
    return [
        (what, m.group(0))
        for what, pattern in PATTERNS.items()
        for m in re.finditer(pattern, text, flags=re.IGNORECASE)
    ]


def test_findings_catches_each_kind():
    text = "run in /work/main while other jobs ran, in session 5"
    assert [w for w, _ in findings(text)] == [
        "a machine path",
        "machine load",
        "a session note",
    ]
    assert findings("2 cores, LiteRT 2.3.0, interleaved timing") == []


def test_docs_have_no_machine_or_session_remarks():
    bad = [
        f"{path.relative_to(ROOT)}: {what} ({found!r})"
        for path in doc_files()
        for what, found in findings(path.read_text())
    ]
    assert not bad, bad
