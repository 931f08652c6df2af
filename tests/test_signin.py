"""Who people are: sign-in through the identity provider (OpenID Connect against the loopback
provider in ``tests/oidc_provider.py``), sessions that expire and end at sign-out, the
self-asserted token form, and named API tokens recorded as who acted."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from taskplanner.cli import describe_config
from taskplanner.clock import FrozenClock
from taskplanner.config import ConfigError, parse_config
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from taskplanner.web.auth import OIDC_CALLBACK_PATH, SESSION_COOKIE, SIGN_IN_COOKIE
from taskplanner.web.oidc import SignInRefused, email_from_claims
from tests import factories as f
from tests.oidc_provider import LoopbackIdentityProvider, Person
from tests.webapp import TOKEN, make_config, make_runtime, seed_two_coordinators, serve

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SIGN_IN_BUTTON = "Sign in with your organisation account"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# --- the loopback provider and an app that signs in through it -----------------------------------


@pytest.fixture(scope="module")
def running_provider() -> Iterator[LoopbackIdentityProvider]:
    provider = LoopbackIdentityProvider()
    with provider.running():
        yield provider


@pytest.fixture
def provider(running_provider: LoopbackIdentityProvider) -> LoopbackIdentityProvider:
    running_provider.behave()
    running_provider.forget()
    return running_provider


def oidc_settings(provider: LoopbackIdentityProvider, **extra: Any) -> dict[str, Any]:
    return {
        "issuer": provider.issuer,
        "allowed_domains": ["acme.example"],
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        **extra,
    }


@pytest.fixture
def runtime(
    db_url: str, clock: FrozenClock, provider: LoopbackIdentityProvider
) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, tokens=[TOKEN], oidc=oidc_settings(provider))
    seed_two_coordinators(runtime, per_person=1)
    yield runtime
    runtime.close()


@contextmanager
def served(runtime: Runtime, provider: LoopbackIdentityProvider) -> Iterator[str]:
    with serve(create_app(runtime)) as base:
        provider.redirect_uris.add(base + OIDC_CALLBACK_PATH)
        yield base


@pytest.fixture
def base(runtime: Runtime, provider: LoopbackIdentityProvider) -> Iterator[str]:
    with served(runtime, provider) as url:
        yield url


@dataclass
class SignIn:
    callback_url: str
    bound_cookie: str | None  # the browser's sign-in binding, as it was before the callback
    response: httpx.Response  # the callback's answer


def sign_in_at_provider(browser: httpx.Client, base: str, next_url: str = "/") -> SignIn:
    """Follow the redirects a browser would: page → provider → callback."""
    start = browser.get(f"{base}/signin/oidc", params={"next": next_url})
    assert start.status_code == 302, start.text
    bound = browser.cookies.get(SIGN_IN_COOKIE)
    at_provider = browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(base + OIDC_CALLBACK_PATH)
    return SignIn(callback, bound, browser.get(callback))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def signed_in_as(browser: httpx.Client, base: str) -> str | None:
    page = browser.get(base + "/")
    if page.status_code != 200:
        return None
    match = re.search(r"Signed in as <strong>([^<]+)</strong>", page.text)
    return match.group(1) if match else None


# --- sign-in through the identity provider -------------------------------------------------------


def test_sign_in_through_the_identity_provider_takes_the_email_from_its_id_token(
    base: str, provider: LoopbackIdentityProvider
) -> None:
    with httpx.Client() as browser:
        first = browser.get(base + "/", follow_redirects=True)
        assert SIGN_IN_BUTTON in first.text
        assert 'name="email"' not in first.text  # nobody types who they are

        sign_in = sign_in_at_provider(browser, base, next_url="/?assignee=sam%40acme.example")

        assert sign_in.response.status_code == 303
        assert sign_in.response.headers["location"] == "/?assignee=sam%40acme.example"
        cookie = sign_in.response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        page = browser.get(base + "/", params={"assignee": f.SAM})
        assert "Signed in as <strong>cora@acme.example</strong>" in page.text
        assert "self-asserted" not in page.text
        assert "Schedule Analyst 100" in page.text  # covering Sam's list

    # Authorization code flow with PKCE (S256), a state and a nonce.
    asked = provider.authorization_requests[-1]
    assert asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["state"] and asked["nonce"] and "openid" in asked["scope"].split()
    exchanged = provider.token_requests[-1]
    assert exchanged["grant_type"] == "authorization_code"
    assert len(exchanged["code_verifier"]) >= 43
    assert "client_secret" not in exchanged  # HTTP Basic, the provider's first method


def test_completing_a_task_after_provider_sign_in_records_the_verified_email(
    base: str, runtime: Runtime
) -> None:
    with httpx.Client() as browser:
        assert sign_in_at_provider(browser, base).response.status_code == 303
        page = browser.get(base + "/")
        task_id = int(re.findall(r'id="task-(\d+)"', page.text)[0])
        done = browser.post(
            f"{base}/tasks/{task_id}/complete",
            data={"csrf_token": csrf_of(page.text)},
            headers={"Accept": "application/json"},
        )
        assert done.status_code == 200
    with TestClient(create_app(runtime)) as api:
        detail = api.get(f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert detail.json()["completed_by"] == f.CORA


@dataclass(frozen=True)
class Misbehaviour:
    name: str
    apply: Callable[[LoopbackIdentityProvider], None]
    says: str
    status: int


def _set(**changes: Any) -> Callable[[LoopbackIdentityProvider], None]:
    def apply(provider: LoopbackIdentityProvider) -> None:
        for key, value in changes.items():
            setattr(provider, key, value)

    return apply


MISBEHAVIOURS = [
    Misbehaviour(
        "wrong_audience",
        _set(audience="some-other-application"),
        "issued it for a different application",
        400,
    ),
    Misbehaviour("expired", _set(expired=True), "it had expired", 400),
    Misbehaviour(
        "wrong_nonce",
        _set(nonce="a-nonce-from-another-sign-in"),
        "does not belong to the sign-in this page started",
        400,
    ),
    Misbehaviour(
        "wrong_domain",
        _set(person=Person(email="eve@elsewhere.example")),
        "eve@elsewhere.example may not sign in here: only addresses at acme.example can.",
        403,
    ),
    Misbehaviour(
        "unverified_email",
        _set(person=Person(email_verified=False)),
        "is not verified at the identity provider",
        403,
    ),
    Misbehaviour(
        "wrong_issuer",
        _set(issuer_claim="https://login.evil.example"),
        "it came from a different identity provider",
        400,
    ),
    Misbehaviour(
        "unknown_signing_key",
        _set(sign_with_unpublished_key=True),
        "its signature does not verify",
        400,
    ),
    Misbehaviour(
        "person_cancels",
        _set(deny=True),
        "The identity provider did not sign you in (access_denied)",
        401,
    ),
]


@sqlite_only
@pytest.mark.parametrize("misbehaviour", MISBEHAVIOURS, ids=lambda m: m.name)
def test_a_sign_in_the_checks_refuse_shows_why_and_signs_nobody_in(
    base: str, provider: LoopbackIdentityProvider, misbehaviour: Misbehaviour
) -> None:
    misbehaviour.apply(provider)
    with httpx.Client() as browser:
        refused = sign_in_at_provider(browser, base).response

        assert refused.status_code == misbehaviour.status
        assert misbehaviour.says in refused.text
        assert 'role="alert"' in refused.text
        assert SIGN_IN_BUTTON in refused.text  # a way to try again
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        assert signed_in_as(browser, base) is None


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_replayed_callback_is_refused_even_with_the_browsers_cookies(
    base: str, provider: LoopbackIdentityProvider
) -> None:
    with httpx.Client() as browser:
        first = sign_in_at_provider(browser, base)
        assert first.response.status_code == 303
        assert first.bound_cookie is not None

    with httpx.Client() as replayer:
        # The same callback URL with the binding cookie the browser had: the state is spent.
        replayer.cookies.set(SIGN_IN_COOKIE, first.bound_cookie, path=OIDC_CALLBACK_PATH)
        replay = replayer.get(first.callback_url)
        assert replay.status_code == 400
        assert "already been used" in replay.text
        assert signed_in_as(replayer, base) is None
    assert len(provider.token_requests) == 1  # the spent code was never sent again


@sqlite_only
def test_a_callback_from_another_browser_is_refused(
    base: str, provider: LoopbackIdentityProvider
) -> None:
    # Login CSRF: someone else's callback URL (their code and state) sent to a victim.
    with httpx.Client() as attacker:
        start = attacker.get(f"{base}/signin/oidc")
        callback = attacker.get(start.headers["location"]).headers["location"]
    with httpx.Client() as victim:
        refused = victim.get(callback)
        assert refused.status_code == 400
        assert "started in another browser" in refused.text
        assert signed_in_as(victim, base) is None


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(
    base: str, provider: LoopbackIdentityProvider
) -> None:
    with httpx.Client() as browser:
        sign_in_at_provider(browser, base)
        kept = browser.cookies.get(SESSION_COOKIE)
        assert kept and signed_in_as(browser, base) == f.CORA

        page = browser.get(base + "/")
        out = browser.post(base + "/signout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303
        assert "You are signed out." in browser.get(base + out.headers["location"]).text
        assert signed_in_as(browser, base) is None

    with httpx.Client() as thief:
        thief.cookies.set(SESSION_COOKIE, kept)
        assert signed_in_as(thief, base) is None


@sqlite_only
def test_provider_sessions_expire_after_the_configured_lifetime(
    db_url: str, clock: FrozenClock, provider: LoopbackIdentityProvider
) -> None:
    runtime = make_runtime(
        db_url,
        clock,
        oidc=oidc_settings(provider),
        server_extra={"session_lifetime": "1h"},
    )
    try:
        with served(runtime, provider) as base, httpx.Client() as browser:
            response = sign_in_at_provider(browser, base).response
            assert "Max-Age=3600" in response.headers["set-cookie"]
            clock.advance(timedelta(minutes=59))
            assert signed_in_as(browser, base) == f.CORA
            clock.advance(timedelta(minutes=2))
            assert signed_in_as(browser, base) is None
    finally:
        runtime.close()


@sqlite_only
def test_with_a_provider_the_typed_email_form_is_refused(base: str) -> None:
    with httpx.Client() as browser:
        refused = browser.post(
            base + "/signin", data={"email": f.SAM, "token": TOKEN, "next": "/"}
        )
        assert refused.status_code == 403
        assert "identity provider" in refused.text
        assert signed_in_as(browser, base) is None


@sqlite_only
def test_an_unreachable_provider_is_a_clear_message_not_an_error(
    db_url: str, clock: FrozenClock
) -> None:
    runtime = make_runtime(
        db_url,
        clock,
        oidc={
            "issuer": "http://127.0.0.1:9",  # discard port: nothing listens
            "allowed_domains": ["acme.example"],
            "client_id": "id",
            "client_secret": "secret",
        },
    )
    try:
        with serve(create_app(runtime)) as base, httpx.Client() as browser:
            refused = browser.get(base + "/signin/oidc")
            assert refused.status_code == 502
            assert "cannot be reached right now" in refused.text
    finally:
        runtime.close()


@sqlite_only
def test_no_code_state_token_or_secret_reaches_the_logs(
    base: str, provider: LoopbackIdentityProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client() as browser:
        good = sign_in_at_provider(browser, base)
        session = browser.cookies.get(SESSION_COOKIE)
        provider.audience = "another-app"
        sign_in_at_provider(browser, base)
    logs = "".join(capsys.readouterr())
    assert "web.signed_in" in logs and "web.oidc_refused" in logs
    state = re.search(r"state=([^&]+)", good.callback_url)
    assert state is not None
    for secret in (provider.client_secret, *provider.issued_codes, state.group(1), session):
        assert secret and secret not in logs


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_replicas_share_the_generated_session_key(
    db_url: str, clock: FrozenClock, provider: LoopbackIdentityProvider
) -> None:
    one = make_runtime(db_url, clock, oidc=oidc_settings(provider))
    two = make_runtime(db_url, clock, oidc=oidc_settings(provider))
    try:
        with (
            served(one, provider) as base_one,
            served(two, provider) as base_two,
            httpx.Client() as browser,
        ):
            sign_in_at_provider(browser, base_one)
            assert signed_in_as(browser, base_two) == f.CORA
    finally:
        one.close()
        two.close()


# --- which address an ID token proves ------------------------------------------------------------

GOOGLE = "https://accounts.google.com"
ENTRA = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"


def test_google_workspace_accounts_need_an_allowed_hosted_domain() -> None:
    workspace = {"email": "Cora@Acme.example", "email_verified": True, "hd": "acme.example"}
    assert email_from_claims(workspace, GOOGLE, ["acme.example"]) == "cora@acme.example"

    personal = {"email": "cora@acme.example", "email_verified": True}  # no hd: not Workspace
    with pytest.raises(SignInRefused, match="not a personal one"):
        email_from_claims(personal, GOOGLE, ["acme.example"])
    other = {**workspace, "hd": "elsewhere.example"}
    with pytest.raises(SignInRefused, match="not a personal one"):
        email_from_claims(other, GOOGLE, ["acme.example"])


def test_entra_id_addresses_come_from_email_or_preferred_username() -> None:
    assert (
        email_from_claims({"preferred_username": "sam@acme.example"}, ENTRA, ["acme.example"])
        == "sam@acme.example"
    )
    verified = {"email": "sam@acme.example", "xms_edov": True, "preferred_username": "x@y.z"}
    assert email_from_claims(verified, ENTRA, ["acme.example"]) == "sam@acme.example"
    with pytest.raises(SignInRefused, match="not verified by your organisation"):
        email_from_claims({**verified, "xms_edov": False}, ENTRA, ["acme.example"])
    with pytest.raises(SignInRefused, match="did not send your email address"):
        email_from_claims({"preferred_username": "+49 30 1234"}, ENTRA, ["acme.example"])


def test_an_unverified_address_or_one_outside_the_domains_is_refused() -> None:
    with pytest.raises(SignInRefused, match="not verified"):
        email_from_claims(
            {"email": "cora@acme.example", "email_verified": "false"}, ENTRA, ["acme.example"]
        )
    with pytest.raises(SignInRefused, match="may not sign in here") as refused:
        email_from_claims({"email": "cora@acme.example.evil"}, ENTRA, ["acme.example"])
    assert refused.value.status == 403


# --- configuration -------------------------------------------------------------------------------


def _config(server: dict[str, Any], environ: dict[str, str] | None = None) -> None:
    parse_config(
        {"organisation": {"name": "Acme", "account_owner": f.ADA}, "server": server},
        source="taskplanner.toml",
        environ=environ or {},
    )


def test_server_oidc_problems_name_the_key() -> None:
    oidc = {
        "issuer": "https://accounts.google.com",
        "client_id_env": "OIDC_CLIENT_ID",
        "client_secret_env": "OIDC_CLIENT_SECRET",
        "allowed_domains": ["acme.example"],
    }
    env = {"OIDC_CLIENT_ID": "id", "OIDC_CLIENT_SECRET": "secret"}
    _config({"oidc": oidc}, env)

    cases = [
        ({"oidc": oidc}, {"OIDC_CLIENT_ID": "id"}, "server.oidc.client_secret_env"),
        ({"oidc": {**oidc, "allowed_domains": []}}, env, "server.oidc.allowed_domains"),
        ({"oidc": {**oidc, "issuer": "http://idp.example"}}, env, "server.oidc.issuer"),
        ({"oidc": {**oidc, "allowed_domains": ["@acme"]}}, env, "server.oidc.allowed_domains"),
        ({"oidc": {**oidc, "tenant": "x"}}, env, "server.oidc.tenant"),
        (
            {"session_key_env": "KEY", "session_key_file": "key.txt"},
            {"KEY": "k" * 40},
            "server.session_key_file",
        ),
        ({"session_lifetime": "soon"}, {}, "server.session_lifetime"),
    ]
    for server, environ, key in cases:
        with pytest.raises(ConfigError) as error:
            _config(server, environ)
        assert error.value.key.startswith(key), str(error.value)
        assert "secret" not in error.value.problem.replace("client_secret_env", "")


def test_config_check_says_how_people_sign_in() -> None:
    with_provider = make_config(
        "sqlite://",
        oidc={
            "issuer": "https://accounts.google.com",
            "allowed_domains": ["acme.example"],
            "client_id": "id",
            "client_secret": "secret",
        },
    )
    assert (
        "page sign-in: identity provider https://accounts.google.com (domains: acme.example)"
        in describe_config(with_provider)
    )
    assert "identity is self-asserted" in describe_config(make_config("sqlite://", tokens=[TOKEN]))


@sqlite_only
def test_a_configured_session_key_signs_the_cookies(db_url: str, clock: FrozenClock) -> None:
    def runtime_with_key(key: str) -> Runtime:
        runtime = make_runtime(db_url, clock, tokens=[TOKEN])
        runtime.config.server.set_secret("session_key", key)  # as session_key_env gives it
        return runtime

    one, same, other = (runtime_with_key(k) for k in ("k" * 40, "k" * 40, "z" * 40))
    try:
        with TestClient(create_app(one)) as browser:
            browser.post("/signin", data={"email": f.CORA, "token": TOKEN})
            cookie = browser.cookies[SESSION_COOKIE]
        for runtime, works in ((same, True), (other, False)):
            with TestClient(create_app(runtime)) as client:
                client.cookies.set(SESSION_COOKIE, cookie)
                page = client.get("/", follow_redirects=False)
                assert (page.status_code == 200) is works
    finally:
        for runtime in (one, same, other):
            runtime.close()


# --- the shared-token form -----------------------------------------------------------------------


@pytest.fixture
def token_runtime(db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = make_runtime(
        db_url, clock, tokens=[TOKEN], public_url="https://tasks.acme.example"
    )
    yield runtime
    runtime.close()


@sqlite_only
def test_the_token_form_says_identity_is_self_asserted(token_runtime: Runtime) -> None:
    with TestClient(create_app(token_runtime), base_url="https://tasks.acme.example") as browser:
        form = browser.get("/signin")
        assert "Identity here is self-asserted" in form.text
        signed = browser.post(
            "/signin", data={"email": f.SAM, "token": TOKEN, "next": "/"}, follow_redirects=False
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        page = browser.get("/")
        assert "Signed in as <strong>sam@acme.example</strong>" in page.text
        assert "(self-asserted)" in page.text


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_token_form_sessions_expire_and_end_at_sign_out(
    token_runtime: Runtime, clock: FrozenClock
) -> None:
    app = create_app(token_runtime)
    with TestClient(app, base_url="https://tasks.acme.example") as browser:
        browser.post("/signin", data={"email": f.CORA, "token": TOKEN})
        clock.advance(timedelta(hours=11, minutes=59))
        assert browser.get("/", follow_redirects=False).status_code == 200
        clock.advance(timedelta(minutes=2))  # past the default 12 hours
        assert browser.get("/", follow_redirects=False).status_code == 303

        browser.post("/signin", data={"email": f.CORA, "token": TOKEN})
        kept = browser.cookies[SESSION_COOKIE]
        page = browser.get("/")
        browser.post("/signout", data={"csrf_token": csrf_of(page.text)})
    with TestClient(app, base_url="https://tasks.acme.example") as thief:
        thief.cookies.set(SESSION_COOKIE, kept)
        assert thief.get("/", follow_redirects=False).status_code == 303


# --- named API tokens ----------------------------------------------------------------------------

CI_TOKEN = "ci-5d8f0a7c2b"
BARE_TOKEN = "bare-token-9e1f=="  # base64 padding is not a name


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_named_token_is_recorded_as_who_acted(db_url: str, clock: FrozenClock) -> None:
    runtime = make_runtime(db_url, clock, tokens=[f"ci-bot={CI_TOKEN}", BARE_TOKEN])
    seed_two_coordinators(runtime, per_person=2)
    try:
        with TestClient(create_app(runtime)) as api:

            def act(token: str, path: str, body: dict[str, Any]) -> httpx.Response:
                return api.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

            tasks = api.get(
                "/api/tasks",
                params={"category": "ready_to_schedule"},
                headers={"Authorization": f"Bearer {CI_TOKEN}"},
            ).json()["tasks"]
            first, second, third = (t["id"] for t in tasks[:3])

            assert act(CI_TOKEN, f"/api/tasks/{first}/complete", {}).json()["completed_by"] == (
                "ci-bot"
            )
            by_name = act(CI_TOKEN, f"/api/tasks/{second}/complete", {"by": f.SAM})
            assert by_name.json()["completed_by"] == f.SAM
            assert act(BARE_TOKEN, f"/api/tasks/{third}/complete", {}).json()[
                "completed_by"
            ] == "api"

            assigned = act(CI_TOKEN, f"/api/tasks/{tasks[3]['id']}/assign", {"assignee": f.SAM})
            assert assigned.status_code == 200
            history = api.get(
                f"/api/tasks/{tasks[3]['id']}", headers={"Authorization": f"Bearer {CI_TOKEN}"}
            ).json()["history"]
            assert history[-1]["actor"] == "ci-bot"

            # The name alone, or the whole entry, is not a token.
            for wrong in ("ci-bot", f"ci-bot={CI_TOKEN}"):
                assert act(wrong, f"/api/tasks/{tasks[3]['id']}/complete", {}).status_code == 401
    finally:
        runtime.close()


# --- in a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
@sqlite_only
def test_provider_sign_in_and_its_refusals_in_a_browser(
    runtime: Runtime, provider: LoopbackIdentityProvider
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with served(runtime, provider) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            callbacks: list[tuple[str, int]] = []
            bindings: list[str] = []  # the sign-in cookie each start of a sign-in set

            def remember_binding(response: Any) -> None:
                if "/signin/oidc?" not in response.url:
                    return
                found = re.search(
                    rf"{SIGN_IN_COOKIE}=([^;]+)", response.all_headers().get("set-cookie", "")
                )
                if found:
                    bindings.append(found.group(1))

            page.on("response", remember_binding)
            page.on(
                "response",
                lambda r: callbacks.append((r.url, r.status))
                if OIDC_CALLBACK_PATH in r.url
                else None,
            )
            alert = page.get_by_role("alert")

            def sign_in_expecting(text: str) -> None:
                page.goto(base + "/signin")
                page.get_by_role("link", name=SIGN_IN_BUTTON).click()
                expect(alert).to_contain_text(text)
                assert 400 <= callbacks[-1][1] < 500, callbacks[-1]
                expect(page.get_by_text("Signed in as")).to_have_count(0)

            # Sign in: no email to type, the provider says who this is.
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_label("Your work email")).to_have_count(0)
            page.get_by_role("link", name=SIGN_IN_BUTTON).click()
            expect(page.get_by_role("heading", name="Your open tasks")).to_be_visible()
            expect(page.locator("header")).to_contain_text("Signed in as cora@acme.example")
            expect(page.locator("header")).not_to_contain_text("self-asserted")
            page.screenshot(path=str(ARTIFACTS / "oidc-01-signed-in.png"), full_page=True)

            # The callback URL used a second time: refused, with a way to start over.
            used_callback = callbacks[-1][0]
            page.goto(used_callback)
            expect(alert).to_contain_text("already been used")
            expect(page.get_by_role("link", name=SIGN_IN_BUTTON)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "oidc-02-replayed.png"), full_page=True)
            # Even with the browser's sign-in binding put back (as a replay of the whole
            # request would carry it): the state is spent on the server, nobody new signs in.
            assert bindings, "the start of the sign-in bound it to this browser"
            binding = {"name": SIGN_IN_COOKIE, "value": bindings[-1], "path": OIDC_CALLBACK_PATH}
            context.add_cookies([{**binding, "domain": "127.0.0.1"}])
            page.goto(used_callback)
            expect(alert).to_contain_text("already been used")
            assert callbacks[-1][1] == 400

            # Sign out ends it.
            page.goto(base + "/")
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("status")).to_have_text("You are signed out.")
            page.goto(base + "/")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

            # What the checks refuse, as the person sees it.
            provider.audience = "some-other-application"
            sign_in_expecting("issued it for a different application")
            provider.behave()
            provider.expired = True
            sign_in_expecting("it had expired")
            provider.behave()
            provider.nonce = "a-nonce-from-another-sign-in"
            sign_in_expecting("does not belong to the sign-in this page started")
            provider.behave()
            provider.person = Person(email="eve@elsewhere.example")
            sign_in_expecting("eve@elsewhere.example may not sign in here")
            page.screenshot(path=str(ARTIFACTS / "oidc-03-wrong-domain.png"), full_page=True)

            # And once the provider behaves again, signing in works.
            provider.behave()
            page.goto(base + "/signin")
            page.get_by_role("link", name=SIGN_IN_BUTTON).click()
            expect(page.locator("header")).to_contain_text("Signed in as cora@acme.example")
        finally:
            browser.close()
