"""pyproject.toml declares exactly what the code imports: nothing unused, nothing missing.

Runtime dependencies are what ``taskplanner/`` and ``connectors/`` import; the ``dev`` extra
is what ``tests/`` and ``bench/`` import beyond them, plus the tools ``make lint`` and
``make audit`` run. The
README's development section says why each runtime dependency is there.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections import defaultdict
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_CODE = ("taskplanner", "connectors")
DEV_CODE = ("tests", "bench")
FIRST_PARTY = {"taskplanner", "connectors", "tests", "bench"}
# Needed at run time, yet never imported by name: another library loads them.
LOADED_BY_OTHERS = {
    "psycopg": "SQLAlchemy loads it for postgresql+psycopg URLs",
    "python-multipart": "FastAPI imports it to parse the sign-in and set-up forms",
}
# Run by ``make lint`` and ``make audit``, never imported.
TOOLS = {"ruff", "mypy", "pip-audit"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(canonical(match.group(0)))
    return names


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    dev = requirement_names(project["optional-dependencies"]["dev"])
    return runtime, dev


@cache
def module_owners() -> dict[str, set[str]]:
    """Every importable module and package name of the installed distributions -> owners."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or not parts[-1].endswith((".py", ".pyi", ".so", ".pyd")):
                continue
            if parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "bin"):
                continue
            stem = parts[-1].split(".", 1)[0]
            module = [*parts[:-1], stem] if stem != "__init__" else list(parts[:-1])
            for depth in range(1, len(module) + 1):
                owners[".".join(module[:depth])].add(name)
    return owners


def owner_of(module: str) -> str | None:
    """The distribution that provides an imported module (deepest unambiguous package)."""
    owners = module_owners()
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        found = owners.get(".".join(parts[:depth]))
        if found and len(found) == 1:
            return next(iter(found))
    return None


def imported_modules(folders: tuple[str, ...]) -> set[str]:
    modules: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module)
    local = {path.stem for folder in folders for path in (ROOT / folder).rglob("*.py")}
    return {
        module
        for module in modules
        if (top := module.split(".")[0]) not in sys.stdlib_module_names
        and top not in FIRST_PARTY
        and top not in local
        and top != "__future__"
    }


def imported_distributions(folders: tuple[str, ...]) -> dict[str, str | None]:
    return {module: owner_of(module) for module in imported_modules(folders)}


def test_runtime_code_imports_only_declared_runtime_dependencies() -> None:
    runtime, _ = declared()
    imports = imported_distributions(RUNTIME_CODE)

    undeclared = {module: dist for module, dist in imports.items() if dist not in runtime}

    assert undeclared == {}


def test_every_runtime_dependency_is_imported_or_loaded_by_one_that_is() -> None:
    runtime, _ = declared()
    used = set(imported_distributions(RUNTIME_CODE).values())

    assert runtime - used == set(LOADED_BY_OTHERS)


def test_tests_and_benches_import_only_declared_dependencies() -> None:
    runtime, dev = declared()
    imports = imported_distributions(DEV_CODE)

    undeclared = {module: dist for module, dist in imports.items() if dist not in runtime | dev}

    assert undeclared == {}


def test_development_dependencies_are_apart_and_each_one_is_used() -> None:
    runtime, dev = declared()
    used = set(imported_distributions(DEV_CODE).values())

    assert runtime & dev == set()
    assert dev - used == TOOLS


def test_the_readme_says_why_each_runtime_dependency_is_there() -> None:
    runtime, _ = declared()
    readme = (ROOT / "README.md").read_text()
    explained = {
        canonical(match)
        for match in re.findall(r"^- `([A-Za-z0-9._-]+)(?:\[\w+\])?`: \S", readme, re.MULTILINE)
    }

    assert runtime - explained == set()
