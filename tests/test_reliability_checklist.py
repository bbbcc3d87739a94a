"""docs/reliability-checklist.md names, for each of the 34 items, tests that exist in this suite."""
import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKLIST = ROOT / "docs" / "reliability-checklist.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
ROW = re.compile(r"^\| (\d+) \|", re.M)


@cache
def _tests_in(path: Path) -> frozenset[str]:
    """The names pytest collects as tests in ``path``: module-level ``test_*`` functions and ``Test*`` methods."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {node.name for node in tree.body
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {f"{node.name}::{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef) and item.name.startswith("test")}
    return frozenset(names)


def missing(text: str) -> list[str]:
    """Every ``tests/x.py::test_name`` in ``text`` whose file or test does not exist."""
    absent = []
    for path, name in REFERENCE.findall(text):
        file = ROOT / path
        if not file.is_file() or name not in _tests_in(file):
            absent.append(f"{path}::{name}")
    return absent


def test_every_test_the_checklist_names_exists():
    text = CHECKLIST.read_text(encoding="utf-8")
    assert len(REFERENCE.findall(text)) > 100  # the table really was read
    assert missing(text) == []


def test_each_of_the_34_items_names_at_least_one_test():
    text = CHECKLIST.read_text(encoding="utf-8")
    rows = {int(number): line for number, line in
            ((m.group(1), text[m.start():text.index("\n", m.start())]) for m in ROW.finditer(text))}
    assert sorted(rows) == list(range(1, 35))
    assert [number for number, line in rows.items() if not REFERENCE.search(line)] == []


def test_a_wrong_name_or_file_is_reported():
    real = "`tests/test_reliability_checklist.py::test_a_wrong_name_or_file_is_reported`"
    assert missing(real) == []
    assert missing("`tests/test_reliability_checklist.py::test_no_such_test`") == [
        "tests/test_reliability_checklist.py::test_no_such_test"]
    assert missing("`tests/no/such_module.py::test_a_wrong_name_or_file_is_reported`") == [
        "tests/no/such_module.py::test_a_wrong_name_or_file_is_reported"]
