"""The configuration loader on bad input (hypothesis): the shipped example with one value made
wrong-typed, null-like, huge or taken out, and files that are truncated, not UTF-8, carry NUL
bytes or are nested too deep. Each gets a `ConfigError` (one line per problem, naming the key
and the file, no secret) or loads; never another exception."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskplanner.config import Config, ConfigError, load_config, parse_config
from tests import bad_input as bad
from tests.test_config import CREDENTIALS, EXAMPLE, EXAMPLE_ENV, SECRET_MARKER

EXAMPLE_TEXT = EXAMPLE.read_text()
EXAMPLE_DATA: dict[str, Any] = tomllib.loads(EXAMPLE_TEXT)
# TOML has no null: a missing key is TOML's "unexpected null".
TOML_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    bad.NASTY_TEXT,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.datetimes(),
    st.times(),
    st.dates(),
)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE, tmp_path / "taskplanner.toml")
    (tmp_path / "google-service-account.json").write_text(CREDENTIALS)
    return tmp_path


def check_error(error: ConfigError, source: str) -> None:
    text = str(error)
    assert text.strip(), "an empty error"
    for line in text.splitlines():
        assert ": " in line and line.endswith(f"({source})"), line
    assert SECRET_MARKER not in text, text


def changed(document: Any) -> st.SearchStrategy[Any]:
    places = [p for p in bad.paths(document) if p]

    def change(path: bad.Path) -> st.SearchStrategy[Any]:
        swap = TOML_VALUES.map(lambda value: bad.replaced(document, path, value))
        return swap | st.just(bad.dropped(document, path))

    return st.sampled_from(places).flatmap(change)


def test_a_wrong_value_anywhere_in_the_example_is_a_config_error_naming_its_key(
    config_dir: Path,
) -> None:
    source = str(config_dir / "taskplanner.toml")

    @settings(max_examples=bad.EXAMPLES * 4)
    @given(data=changed(EXAMPLE_DATA))
    def run(data: dict[str, Any]) -> None:
        try:
            loaded = parse_config(data, source=source, environ=EXAMPLE_ENV)
        except ConfigError as error:
            check_error(error, source)
        else:
            assert isinstance(loaded, Config)

    run()


def text_files() -> st.SearchStrategy[bytes]:
    raw = EXAMPLE_TEXT.encode()
    return st.one_of(
        st.integers(0, len(raw) - 1).map(lambda n: raw[:n]),  # truncated
        bad.invalid_utf8(raw),
        st.integers(0, len(raw) - 1).map(lambda at: raw[:at] + b"\x00" + raw[at:]),
        st.sampled_from([2_000, 100_000]).map(lambda n: b"x = " + b"[" * n + b"]" * n),
        st.sampled_from([2_000, 100_000]).map(lambda n: b"x = " + b"{a=" * n + b"1" + b"}" * n),
        st.binary(max_size=64),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(raw + b"\n[organisation]\nname = 'again'\n"),
    )


def test_a_broken_file_is_a_config_error_naming_the_file(config_dir: Path) -> None:
    path = config_dir / "taskplanner.toml"

    @settings(max_examples=bad.EXAMPLES * 2, suppress_health_check=[HealthCheck.data_too_large])
    @given(content=text_files())
    def run(content: bytes) -> None:
        path.write_bytes(content)
        try:
            load_config(path, EXAMPLE_ENV)
        except ConfigError as error:
            check_error(error, str(path))

    run()


@pytest.mark.parametrize("nesting", ["[", "{a="])
def test_toml_nested_too_deeply_is_one_line_naming_the_file_not_a_traceback(
    config_dir: Path, nesting: str
) -> None:
    from typer.testing import CliRunner

    from taskplanner.cli import app

    path = config_dir / "taskplanner.toml"
    closing = "]" if nesting == "[" else "}"
    path.write_text(EXAMPLE_TEXT + "\n[extra]\nx = " + nesting * 50_000 + "1" + closing * 50_000)

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stderr == (
        f"config: TOML nested too deeply (arrays or inline tables inside each other) ({path})\n"
    )


@pytest.mark.parametrize("key", ["\r", "a\nb", 'say "hi"', "tab\there", "\x1b[31mred"])
def test_an_unknown_key_with_control_characters_stays_on_its_one_line(key: str) -> None:
    data = {"organisation": {"name": "Acme", "account_owner": "ada@acme.example", key: 1}}
    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="t.toml", environ={})
    [line] = str(raised.value).splitlines()
    assert line.startswith("organisation.") and line.endswith(
        ": unknown key (expected one of: name, account_owner, timezone) (t.toml)"
    )
    assert line.isprintable()
