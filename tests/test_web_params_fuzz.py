"""Every page and sign-in parameter on bad input (hypothesis); the JSON API's parameters are
generated from its OpenAPI document in tests/test_api_fuzz.py, its raw query strings here.

Values are nasty text, huge strings, NUL bytes and invalid UTF-8 (sent percent-encoded, as a
browser or a script can), for the query strings of ``/``, ``/tasks/live``, the set-up page and
sign-in, the forms behind them, and the path segments. Each gets a page, a redirect or a 4xx;
never a 5xx, and nothing stored changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from taskplanner.clock import FrozenClock
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.web.app import create_app
from tests import bad_input as bad
from tests import factories as f
from tests.webapp import TOKEN, make_runtime, seed_two_coordinators

RAW_VALUES: st.SearchStrategy[bytes] = st.one_of(
    bad.NASTY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),  # invalid UTF-8 and NUL bytes, percent-encoded
    st.sampled_from(
        [
            b"\x00",
            b"\xff\xfe",
            b"-1",
            b"0",
            b"99999999999999999999",
            b"1e309",
            b"//evil.example",
            b"/\\evil.example",
            b"javascript:alert(1)",
            b"https://evil.example/",
            b"x" * 8_000,
        ]
    ),
)
PARAMS = [
    "assignee",
    "completed",
    "category",
    "cursor",
    "saved",
    "next",
    "signed_out",
    "state",
    "code",
    "error",
    "limit",
    "status",
]


def query(pairs: list[tuple[str, bytes]]) -> str:
    return "&".join(f"{quote(k)}={quote_from_bytes(v, safe='')}" for k, v in pairs)


QUERIES = st.lists(st.tuples(st.sampled_from(PARAMS), RAW_VALUES), max_size=4).map(query)


def names_nothing(value: bytes) -> bool:
    """Not an id the seeded data has (those would complete a task or save a set-up)."""
    text = value.strip()
    return bool(value) and not (text.isdigit() and int(text) < 1_000) and text not in (b"j1", b"j2")


SEGMENTS = RAW_VALUES.filter(names_nothing).map(lambda v: quote_from_bytes(v, safe=""))


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN])
    seed_two_coordinators(runtime, per_person=2)
    yield runtime
    runtime.close()


def stored(runtime: Runtime) -> tuple[Any, ...]:
    """Tasks, set-up and sessions: what a request could change."""
    with transaction(runtime.db, read_only=True) as session:
        tasks = session.execute(
            select(m.Task.id, m.Task.status, m.Task.assignee).order_by(m.Task.id)
        ).all()
        setup = session.execute(select(m.StageSetup)).all()
        jobs = session.execute(select(m.JobSetup)).all()
    return tuple(tasks), len(setup), len(jobs)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def signed_in(runtime: Runtime) -> tuple[TestClient, str]:
    client = TestClient(create_app(runtime), base_url="https://tasks.acme.example")
    answer = client.post("/signin", data={"email": f.CORA, "token": TOKEN})
    assert answer.status_code in (200, 303), answer.text
    page = client.get("/")
    assert page.status_code == 200
    return client, csrf_of(page.text)


def no_server_error(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"


def test_bad_query_strings_on_every_page_get_a_page_a_redirect_or_a_4xx(
    runtime: Runtime,
) -> None:
    client, _ = signed_in(runtime)
    anonymous = TestClient(create_app(runtime), base_url="https://tasks.acme.example")
    api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {TOKEN}"})
    before = stored(runtime)
    pages = [
        "/",
        "/tasks/live",
        "/jobs/j1/setup",
        "/signin",
        "/signin/oidc",
        "/signin/oidc/callback",
    ]

    @settings(max_examples=bad.EXAMPLES * 2)
    @given(qs=QUERIES)
    def run(qs: str) -> None:
        for path in pages:
            for who in (client, anonymous):
                answer = who.get(f"{path}?{qs}", follow_redirects=False)
                no_server_error(answer, f"GET {path}?{qs[:200]}")
                location = answer.headers.get("location", "")
                assert not location.startswith(("//", "http://evil", "https://evil")), location
        for path in ("/api/tasks", "/api/coordinators", "/api/tasks/1"):
            no_server_error(api.get(f"{path}?{qs}"), f"GET {path}?{qs[:200]}")

    run()
    assert stored(runtime) == before


def test_bad_path_segments_get_a_404_or_a_422(runtime: Runtime) -> None:
    client, csrf = signed_in(runtime)
    api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {TOKEN}"})
    before = stored(runtime)

    @settings(max_examples=bad.EXAMPLES * 2)
    @given(segment=SEGMENTS)
    def run(segment: str) -> None:
        for method, path in [
            ("GET", f"/jobs/{segment}/setup"),
            ("POST", f"/jobs/{segment}/setup"),
            ("POST", f"/tasks/{segment}/complete"),
            ("GET", f"/api/tasks/{segment}"),
            ("GET", f"/api/jobs/{segment}"),
            ("POST", f"/webhooks/{segment}"),
        ]:
            who = api if path.startswith("/api") else client
            answer = who.request(method, path, data={"csrf_token": csrf}, follow_redirects=False)
            no_server_error(answer, f"{method} {path[:200]}")
            assert answer.status_code in (401, 403, 404, 405, 413, 422), (path, answer.status_code)

    run()
    assert stored(runtime) == before


FORM_VALUES = RAW_VALUES.map(lambda v: v.decode("utf-8", "replace"))


def test_bad_form_fields_are_refused_with_a_message_and_store_nothing(runtime: Runtime) -> None:
    client, csrf = signed_in(runtime)
    setup_form = client.get("/jobs/j1/setup").text
    # The form as the page renders it: every field, so only the bad one differs.
    fields = dict(
        re.findall(r'<input type="(?:email|hidden)"[^>]*name="([^"]+)" value="([^"]*)"', setup_form)
    )
    checked = re.findall(r'name="((?:enabled|alerts):[^"]+)" value="1" checked', setup_form)
    fields.update((name, "1") for name in checked)
    before = stored(runtime)

    @settings(max_examples=bad.EXAMPLES * 2)
    @given(
        value=FORM_VALUES,
        other=FORM_VALUES,
        field=st.sampled_from(["coordinator", *(k for k in fields if k.startswith("owner:"))]),
    )
    def run(value: str, other: str, field: str) -> None:
        # An owner that is not an email address: the page says so and nothing is stored.
        sent = {**fields, "csrf_token": csrf, field: value + "@" if "@" not in value else value}
        answer = client.post("/jobs/j1/setup", data=sent, follow_redirects=False)
        no_server_error(answer, f"owner {value[:100]!r}")
        assert answer.status_code in (303, 422), answer.status_code
        if answer.status_code == 422:
            assert 'role="alert"' in answer.text or "is not an email address" in answer.text
            assert stored(runtime) == before
        # Sign-in and completing: bad emails, tokens, CSRF tokens and return addresses.
        form = client.post(
            "/signin", data={"email": value, "token": other, "next": other}, follow_redirects=False
        )
        no_server_error(form, "sign-in form")
        done = client.post(
            "/tasks/999999/complete",
            data={"csrf_token": other, "return_to": value},
            follow_redirects=False,
        )
        no_server_error(done, "complete with a bad CSRF token")
        assert done.status_code in (403, 404)

    run()
    assert stored(runtime)[0] == before[0]
