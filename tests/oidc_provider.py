"""A loopback OpenID Connect provider for tests, served over real HTTP on 127.0.0.1.

It follows OpenID Connect Core 1.0 and Discovery 1.0 as Google and Microsoft Entra ID do:
a discovery document, an authorization endpoint that approves one configured person at once
(redirecting back with ``code`` and ``state``), a token endpoint that authenticates the
client (HTTP Basic or form fields, RFC 6749 §2.3.1), refuses a used code and checks the PKCE
verifier against the S256 challenge (RFC 7636 §4.6), and a JWKS. ID tokens are real RS256
JWTs signed by a key the JWKS publishes.

Switches make it misbehave the ways a sign-in must refuse: an ID token for another
audience, an expired one, one carrying another nonce or issuer, one signed by a key the JWKS
does not publish, a person whose address is unverified or outside the allowed domains, or
the person cancelling (``error=access_denied``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.webapp import serve

CLIENT_ID = "taskplanner-loopback-client"
CLIENT_SECRET = "idp-client-secret-5b1e9d"  # test value


@dataclass
class Person:
    email: str = "cora@acme.example"
    name: str = "Cora Coordinator"
    email_verified: bool | None = True
    hd: str | None = None
    subject: str = "loopback-subject-1"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    person: Person


@dataclass
class LoopbackIdentityProvider:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    person: Person = field(default_factory=Person)
    # --- misbehaviour switches (None / False: behave) ---
    audience: str | None = None  # the ID token's aud instead of the client id
    expired: bool = False  # exp an hour in the past
    nonce: str | None = None  # instead of the nonce the request carried
    issuer_claim: str | None = None  # iss instead of the issuer
    sign_with_unpublished_key: bool = False  # same kid, a key the JWKS does not have
    deny: bool = False  # the person cancels: error=access_denied
    # --- what happened, for assertions ---
    authorization_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued_codes: list[str] = field(default_factory=list)
    issuer: str = ""
    redirect_uris: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        params = {"kid": "loopback-key-1", "use": "sig", "alg": "RS256"}
        self._key = RSAKey.generate_key(2048, parameters=params, private=True)
        self._unpublished = RSAKey.generate_key(2048, parameters=params, private=True)
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.app = self._build_app()

    @contextmanager
    def running(self) -> Iterator[LoopbackIdentityProvider]:
        with serve(self.app) as base:
            self.issuer = base
            yield self

    def behave(self) -> None:
        """Turn every misbehaviour off and approve the default person again."""
        self.person = Person()
        self.audience = self.nonce = self.issuer_claim = None
        self.expired = self.sign_with_unpublished_key = self.deny = False

    def forget(self) -> None:
        """Clear the record of requests (between tests sharing one provider)."""
        self.authorization_requests.clear()
        self.token_requests.clear()
        self.issued_codes.clear()

    # --- the endpoints ----------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name", "hd"],
            }

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return KeySet([self._key]).as_dict(private=False)

        @app.get("/authorize")
        def authorize(request: Request) -> Response:
            query = dict(request.query_params)
            self.authorization_requests.append(query)
            redirect_uri = query.get("redirect_uri", "")
            # RFC 6749 §4.1.2.1: a bad client or redirect URI is told to the person, never
            # redirected to.
            if query.get("client_id") != self.client_id:
                return PlainTextResponse("unknown client_id", 400)
            if redirect_uri not in self.redirect_uris:
                return PlainTextResponse("redirect_uri is not registered", 400)
            back = {"state": query["state"]} if "state" in query else {}
            error = None
            if query.get("response_type") != "code":
                error = "unsupported_response_type"
            elif "openid" not in query.get("scope", "").split():
                error = "invalid_scope"
            elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                error = "invalid_request"  # PKCE with S256 is required here
            elif not query.get("nonce"):
                error = "invalid_request"
            elif self.deny:
                error = "access_denied"
            if error is not None:
                return RedirectResponse(
                    f"{redirect_uri}?{urlencode({'error': error, **back})}", 302
                )
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._grants[code] = _Grant(
                    client_id=self.client_id,
                    redirect_uri=redirect_uri,
                    nonce=query["nonce"],
                    code_challenge=query["code_challenge"],
                    person=self.person,
                )
            self.issued_codes.append(code)
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, **back})}", 302)

        @app.post("/token")
        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form)
            client_id, client_secret = _client_credentials(request, form)
            if client_id != self.client_id or not secrets.compare_digest(
                client_secret or "", self.client_secret
            ):
                return JSONResponse(
                    {"error": "invalid_client"},
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="loopback"'},
                )
            if form.get("grant_type") != "authorization_code":
                return JSONResponse({"error": "unsupported_grant_type"}, 400)
            with self._lock:
                grant = self._grants.pop(form.get("code", ""), None)  # a code works once
            if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant"}, 400)
            verifier = form.get("code_verifier", "")
            if not verifier or _s256(verifier) != grant.code_challenge:
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "PKCE verification failed"},
                    400,
                )
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(24),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "openid email profile",
                    "id_token": self._id_token(grant),
                },
                headers={"Cache-Control": "no-store"},
            )

        return app

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        person = grant.person
        claims: dict[str, Any] = {
            "iss": self.issuer_claim or self.issuer,
            "sub": person.subject,
            "aud": self.audience or grant.client_id,
            "iat": now - 3600 * 2 if self.expired else now,
            "exp": now - 3600 if self.expired else now + 3600,
            "nonce": self.nonce or grant.nonce,
            "email": person.email,
            "name": person.name,
        }
        if person.email_verified is not None:
            claims["email_verified"] = person.email_verified
        if person.hd is not None:
            claims["hd"] = person.hd
        key = self._unpublished if self.sign_with_unpublished_key else self._key
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError:
            return None, None
        client_id, _, client_secret = decoded.partition(":")
        # RFC 6749 §2.3.1: both are form-urlencoded before encoding.
        return unquote(client_id), unquote(client_secret)
    return form.get("client_id"), form.get("client_secret")
