"""Signing in to the page and out again.

With ``[server.oidc]`` people sign in at the organisation's identity provider and their
email comes from its ID token. Without it, the shared-token form stays for small set-ups:
the person types an email and one of the API tokens, and the page says that identity is
self-asserted. Sign-out deletes the session server-side.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from taskplanner.clock import span_text
from taskplanner.web.api import authenticator_of
from taskplanner.web.auth import CSRF_FIELD, Authenticator, client_of, valid_email
from taskplanner.web.oidc import IdentityProvider, SignInRefused
from taskplanner.web.page import render, safe_next
from taskplanner.web.sessions import PendingSignIn

log = structlog.get_logger("taskplanner.web")
router = APIRouter(include_in_schema=False)

REFUSAL = (
    "This server has no access tokens configured, so it only serves this machine. "
    "Sign in through your organisation's sign-in proxy, or ask your admin to set "
    "server.api_tokens_env or [server.oidc]."
)
USE_PROVIDER = "This server signs people in through the organisation's identity provider."
STALE_SIGN_IN = (
    "This sign-in link has already been used, has expired, or was started in another "
    "browser. Sign in again."
)


def signin_page(
    request: Request,
    next_url: str,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    auth = authenticator_of(request)
    oidc = auth.oidc
    allowed = oidc is not None or auth.may_sign_in_with_form(request)
    context: dict[str, Any] = {
        "oidc": oidc is not None,
        "provider_host": oidc.host if oidc else "",
        "start_url": "/signin/oidc?" + urlencode({"next": next_url}),
        "allowed": allowed,
        "refusal": REFUSAL,
        "token_required": auth.tokens_configured,
        "next": next_url,
        "email": email[:254],
        "error": error,
        "notice": notice,
    }
    return render(request, "signin.html", context, status_code=status_code if allowed else 403)


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request) -> Response:
    auth = authenticator_of(request)
    next_url = safe_next(request.query_params.get("next"))
    if auth.page_user(request) is not None:
        return RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)
    notice = "You are signed out." if request.query_params.get("signed_out") else None
    return signin_page(request, next_url, notice=notice)


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    """The shared-token form: an email the person types, vouched for by an API token."""
    auth = authenticator_of(request)
    auth.check_origin(request)
    form = await request.form()
    next_url = safe_next(str(form.get("next") or ""))
    raw_email = str(form.get("email") or "")
    if auth.oidc is not None:
        return signin_page(request, next_url, error=USE_PROVIDER, status_code=403)
    if not auth.may_sign_in_with_form(request):
        return signin_page(request, next_url, email=raw_email)
    email = valid_email(raw_email)
    if email is None:
        return signin_page(
            request,
            next_url,
            error="Enter your work email address.",
            email=raw_email,
            status_code=400,
        )
    if auth.tokens_configured:
        wait = auth.guesses.retry_after(client_of(request))
        if wait is not None:
            error = (
                "Too many wrong tokens from here; try again in "
                f"{span_text(timedelta(seconds=wait))}."
            )
            return signin_page(request, next_url, error=error, email=raw_email, status_code=429)
        if not auth.token_matches(str(form.get("token") or "")):
            auth.guesses.failed(client_of(request))
            return signin_page(
                request,
                next_url,
                error="That access token is not right.",
                email=raw_email,
                status_code=401,
            )
    via = "token" if auth.tokens_configured else "local"
    user = await run_in_threadpool(lambda: auth.start_session(email, via=via))
    log.info("web.signed_in", via=via, email=email, client=client_of(request))
    response = RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)
    auth.set_cookie(response, user, request)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    auth = authenticator_of(request)
    user = await run_in_threadpool(auth.page_user, request)
    if user is not None:
        form = await request.form()
        auth.check_csrf(request, user, str(form.get(CSRF_FIELD) or ""))
        await run_in_threadpool(auth.end_session, request)
        log.info("web.signed_out", via=user.via, email=user.email)
    response = RedirectResponse("/signin?signed_out=1", status.HTTP_303_SEE_OTHER)
    auth.clear_cookie(response)
    return response


# --- through the identity provider ----------------------------------------------------------


def _provider(auth: Authenticator) -> IdentityProvider:
    if auth.oidc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no identity provider is configured")
    return auth.oidc


@router.get("/signin/oidc")
def begin_oidc_sign_in(request: Request) -> Response:
    """Send the person to the identity provider, remembering what the callback checks."""
    auth = authenticator_of(request)
    provider = _provider(auth)
    next_url = safe_next(request.query_params.get("next"))
    redirect_uri = auth.oidc_redirect_uri(request)
    try:
        start = provider.authorization(redirect_uri)
    except SignInRefused as refused:
        log.warning("web.oidc_unavailable", reason=refused.reason, issuer=provider.issuer)
        return signin_page(request, next_url, error=refused.message, status_code=refused.status)
    auth.sessions.remember_sign_in(
        start.state, PendingSignIn(start.nonce, start.code_verifier, redirect_uri, next_url)
    )
    response = RedirectResponse(start.url, status.HTTP_302_FOUND)
    auth.bind_sign_in(response, start.state, request)
    return response


@router.get("/signin/oidc/callback")
def finish_oidc_sign_in(request: Request) -> Response:
    """Where the provider sends the person back: check, exchange, verify, sign in."""
    auth = authenticator_of(request)
    provider = _provider(auth)
    params = request.query_params
    state = params.get("state", "")

    def refuse(message: str, reason: str, status_code: int, next_url: str = "/") -> Response:
        log.warning("web.oidc_refused", reason=reason, client=client_of(request))
        response = signin_page(request, next_url, error=message, status_code=status_code)
        auth.clear_sign_in(response)
        return response

    if not state or not auth.sign_in_bound_to(request, state):
        return refuse(STALE_SIGN_IN, "state missing or not this browser's", 400)
    pending = auth.sessions.take_sign_in(state)
    if pending is None:
        return refuse(STALE_SIGN_IN, "state unknown, used or expired", 400)
    if "error" in params:
        # RFC 6749 §4.1.2.1: e.g. access_denied when the person cancels.
        error = params["error"][:60]
        return refuse(
            f"The identity provider did not sign you in ({error}). Sign in again.",
            f"provider error {error}",
            401,
            pending.next_url,
        )
    code = params.get("code", "")
    if not code:
        return refuse(STALE_SIGN_IN, "callback without code", 400, pending.next_url)
    try:
        identity = provider.identify(
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
        )
    except SignInRefused as refused:
        return refuse(refused.message, refused.reason, refused.status, pending.next_url)
    user = auth.start_session(identity.email, via="oidc")
    log.info("web.signed_in", via="oidc", email=identity.email, client=client_of(request))
    response = RedirectResponse(pending.next_url, status.HTTP_303_SEE_OTHER)
    auth.set_cookie(response, user, request)
    auth.clear_sign_in(response)
    return response
