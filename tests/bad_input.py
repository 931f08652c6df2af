"""Hypothesis strategies for the bad input of issue 16 and checks of what a parser may return.

``bad_bodies(samples)`` makes webhook bodies out of real deliveries: random JSON, truncated,
wrong-typed, huge and deeply nested JSON, invalid UTF-8, NUL bytes and unexpected nulls.
``assert_well_typed`` checks a snapshot a parser made could be stored: every text field a
string (or None where allowed), every time aware.

Example counts stay small (``EXAMPLES``) and the ``ci`` profile (tests/conftest.py) is
derandomized, so the suite stays fast and repeatable; ``HYPOTHESIS_PROFILE=explore`` runs
more examples with fresh randomness.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from taskplanner.domain import snapshots as sn

# Examples per test: few, so the suite stays fast; the "explore" profile tries ten times more.
EXAMPLES = 25 * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1)

Path = tuple[str | int, ...]

# Text a provider may put in a name: markup, quotes, newlines, NUL, lone surrogates
# (JSON's "\ud800" decodes to one) and right-to-left marks.
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "Ada\x00Lovelace",
        "\ud800",
        "name\udfff",
        "<script>alert(1)</script>",
        "\r\nBcc: eve@evil.example",
        "\u202etxt.exe",
        "x" * 10_000,
        "null",
        "0",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+05:00",
        "not a date",
    ]
) | st.text(max_size=40)

WRONG_TYPED: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.none(), max_size=2),
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON document (NaN and Infinity included: Python's parser accepts them)."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | NASTY_TEXT
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


# Keys the ATS payloads use, so random objects sometimes look like a delivery.
KEYS = [
    "action",
    "payload",
    "event",
    "data",
    "id",
    "application",
    "candidate",
    "job",
    "name",
    "triggeredAt",
    "token",
    "signature",
    "webhookActionType",
    "status",
    "created_at",
]


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def paths(document: Any, prefix: Path = ()) -> list[Path]:
    """Every place in a document (objects' keys and arrays' items), the root included."""
    out = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            out += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            out += paths(value, (*prefix, index))
    return out


def replaced(document: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {k: replaced(v, rest, value) if k == head else v for k, v in document.items()}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(document)]


def dropped(document: Any, path: Path) -> Any:
    """The document without the key or item at ``path``."""
    head, rest = path[0], path[1:]
    if not rest:
        if isinstance(document, dict):
            return {k: v for k, v in document.items() if k != head}
        return [v for i, v in enumerate(document) if i != head]
    if isinstance(document, dict):
        return {k: dropped(v, rest) if k == head else v for k, v in document.items()}
    return [dropped(v, rest) if i == head else v for i, v in enumerate(document)]


def mutated(document: Any) -> st.SearchStrategy[Any]:
    """The document with one place set to null, a wrong type or nasty text, or taken out."""
    places = paths(document)

    def change(path: Path) -> st.SearchStrategy[Any]:
        swap = WRONG_TYPED.map(lambda value: replaced(document, path, value))
        return swap | st.just(dropped(document, path)) if path else swap

    return st.sampled_from(places).flatmap(change)


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"null" + b"}" * depth


def invalid_utf8(body: bytes) -> st.SearchStrategy[bytes]:
    def corrupt(at: int, junk: bytes) -> bytes:
        return body[:at] + junk + body[at:]

    return st.builds(
        corrupt,
        st.integers(0, max(0, len(body) - 1)),
        st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]),
    )


def with_nul(body: bytes) -> st.SearchStrategy[bytes]:
    """A raw NUL byte somewhere, or the body's strings carrying escaped NULs."""
    raw = st.integers(0, max(0, len(body) - 1)).map(lambda at: body[:at] + b"\x00" + body[at:])
    escaped = st.just(body.replace(b'":"', b'":"\\u0000'))
    return raw | escaped


def huge(document: Any) -> st.SearchStrategy[bytes]:
    """Big but under the body limit: a long string in each place, or a long array."""
    places = [p for p in paths(document) if p]
    if not places:
        return st.just(dumps(["x" * 200_000]))
    return st.sampled_from(places).flatmap(
        lambda path: st.sampled_from(["n" * 200_000, list(range(30_000)), 10**4000]).map(
            lambda value: dumps(replaced(document, path, value))
        )
    )


def bad_bodies(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """Bodies made from real deliveries ``samples`` in every way issue 16 lists."""
    documents = [json.loads(s) for s in samples]
    sample = st.sampled_from(samples)
    document = st.sampled_from(documents)
    return st.one_of(
        json_values().map(dumps),  # random JSON
        sample.flatmap(lambda b: st.integers(0, len(b) - 1).map(lambda n: b[:n])),  # truncated
        document.flatmap(mutated).map(dumps),  # wrong-typed, unexpected nulls, missing keys
        document.flatmap(huge),  # huge
        st.builds(  # deeply nested
            nested, st.sampled_from([2_000, 50_000, 200_000]), st.sampled_from(["array", "object"])
        ),
        sample.flatmap(invalid_utf8),  # invalid UTF-8
        sample.flatmap(with_nul),  # NUL bytes
        st.binary(max_size=64),  # not text at all
        st.just(b""),
    )


# ----------------------------------------------------------------------- what parsers return


def _allowed(hint: Any) -> tuple[type, ...]:
    """The runtime types a field's annotation allows (generics by their origin)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _allowed(arg))
    if hint is None or hint is type(None):
        return (type(None),)
    origin = typing.get_origin(hint)
    return (origin,) if origin is not None else (hint,)


def assert_well_typed(value: Any, where: str = "snapshot") -> None:
    """Every field holds what its annotation says and times are aware. (Text with NUL or lone
    surrogates is fine here: the pipeline cleans it for every provider, see
    ``taskplanner.domain.snapshots.storable``.)"""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise AssertionError(f"{where}: {type(value).__name__} is not a snapshot")
    hints = typing.get_type_hints(type(value), vars(sn))
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        label = f"{where}.{f.name}"
        allowed = _allowed(hints[f.name])
        assert isinstance(item, allowed), f"{label}: {type(item).__name__} is not {allowed}"
        check_value(item, label)


def check_value(item: Any, label: str) -> None:
    if isinstance(item, datetime):
        assert item.tzinfo is not None, f"{label}: naive time"
    elif isinstance(item, tuple):
        for index, element in enumerate(item):
            if dataclasses.is_dataclass(element):
                assert_well_typed(element, f"{label}[{index}]")
    elif dataclasses.is_dataclass(item):
        assert_well_typed(item, label)


Raises = tuple[type[BaseException], ...]


def outcome(call: Callable[[], Any], allowed: Raises) -> BaseException | Any:
    """What ``call`` returned, or the exception it raised when that is one of ``allowed``
    (anything else propagates, failing the test with its traceback)."""
    try:
        return call()
    except allowed as exc:
        return exc
