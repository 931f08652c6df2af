"""docs/bad-input.md and docs/threat-model.md name the test holding each row: every row names
at least one, and every test named is defined (a renamed or deleted test, or a parameter id
no longer spelt in its file, fails here)."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from taskplanner.providers import PROVIDERS

REPO = Path(__file__).resolve().parents[1]
DOCS = ("docs/bad-input.md", "docs/threat-model.md")
# Each document spells its own abbreviations once, as "`GC` = `tests/test_greenhouse_connector.py`".
LEGEND = re.compile(r"`([A-Z]{1,3})` = `(tests/[\w/]+\.py)`")
# Short names the documents use for long parametrised tests.
SHORT_NAMES = {
    "broken": "test_broken_config_exits_2_with_one_line_naming_key_and_file",
    "argument": "test_a_bad_argument_is_one_line_naming_it_and_exits_2",
    "tampered": "test_a_tampered_or_unsigned_delivery_is_refused_and_nothing_is_stored",
}
REFERENCE = re.compile(r"`((?:[A-Z]{1,3}|tests/[\w/]+\.py)::[^`]+)`")


def table_rows(text: str) -> list[str]:
    """The body rows of every table: not the header, not the |---| line."""
    rows = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        if (
            index + 1 < len(lines)
            and set(lines[index + 1]) <= set("|-: ")
            and "-" in lines[index + 1]
        ):
            continue  # a header
        rows.append(line)
    return rows


def resolve(reference: str, abbreviations: dict[str, str]) -> tuple[str, str, str | None]:
    """(file, function, parameter id or None) of ``C::broken[x]`` or ``tests/x.py::test[y]``."""
    where, _, rest = reference.partition("::")
    path = abbreviations.get(where, where)
    match = re.fullmatch(r"([\w]+)(?:\[(.+)\])?", rest)
    assert match, f"cannot read the test reference {reference!r}"
    name, parameter = match.group(1), match.group(2)
    return path, SHORT_NAMES.get(name, name), parameter


@cache
def defined_tests(path: str) -> tuple[frozenset[str], str]:
    """The test functions a file defines (read, not imported: fast) and its source."""
    source = (REPO / path).read_text()
    names = frozenset(
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    )
    return names, source


def exists(path: str, function: str, parameter: str | None) -> bool:
    """The test is defined in ``path``; a parameter id is spelt in its source (as one
    literal, or each word of an id joined from an argument list)."""
    if not (REPO / path).is_file():
        return False
    names, source = defined_tests(path)
    if function not in names:
        return False
    if parameter is None:
        return True
    parameter = parameter.removesuffix("-…")  # "[ashby-…]": ashby, on any database
    if parameter in PROVIDERS:
        return True  # the suites parametrised over providers take their ids from the registry
    return parameter in source or all(f'"{word}"' in source for word in parameter.split())


@pytest.mark.parametrize("document", DOCS)
def test_every_row_names_a_test_that_exists(document: str) -> None:
    text = (REPO / document).read_text()
    abbreviations = dict(LEGEND.findall(text))
    rows = table_rows(text)
    assert len(rows) >= 20, f"{document}: too few rows to be the document"
    missing_test = [row for row in rows if not REFERENCE.search(row)]
    assert not missing_test, f"{document}: rows naming no test:\n" + "\n".join(missing_test)
    unknown = []
    for row in rows:
        for reference in REFERENCE.findall(row):
            path, function, parameter = resolve(reference, abbreviations)
            if not exists(path, function, parameter):
                unknown.append(reference)
    assert not unknown, f"{document} names tests that do not exist: {unknown}"


def test_bad_input_has_at_least_forty_rows() -> None:
    assert len(table_rows((REPO / "docs/bad-input.md").read_text())) >= 40
