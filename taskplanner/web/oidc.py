"""Sign-in through the organisation's identity provider (Google Workspace, Microsoft Entra ID):
OpenID Connect's authorization code flow with PKCE, and which email address an ID token proves.

authlib builds the authorization request (state, nonce, S256 code challenge), the token
request and its client authentication, and checks the ID token's claims (``iss``, ``aud``,
``azp``, ``exp``, ``iat``, ``nonce``); joserfc, authlib's JOSE half, checks its signature
against the issuer's JWKS. HTTP goes through httpx like every other call this daemon makes
(authlib's own httpx integration now targets httpx2 and warns on httpx).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

from taskplanner.config import OidcConfig

log = structlog.get_logger("taskplanner.web.oidc")

SCOPE = "openid email profile"
HTTP_TIMEOUT = 10.0
METADATA_TTL = 3600.0  # discovery documents change rarely; keys are refetched on a new kid
CLOCK_LEEWAY = 120  # seconds of clock difference tolerated on exp/iat, as authlib's default
# Signatures an ID token may carry: asymmetric only, so a token "signed" with the client
# secret (HS256) or not at all ("none") is never accepted. RS256 is OIDC Core's default.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
# Google's tokens name their issuer either way ("iss" in its OpenID Connect guide:
# https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload).
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
TRUE_VALUES = (True, "true", "True", "1", 1)


class SignInRefused(Exception):
    """A sign-in that cannot go on: ``message`` is for the person, ``reason`` for the log.

    Neither ever holds a code, a token or a secret.
    """

    def __init__(self, message: str, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Authorization:
    """Where to send the person, and what the callback must check when they come back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    email: str
    subject: str


def discovery_url(issuer: str) -> str:
    # OpenID Connect Discovery §4: a terminating "/" is removed before appending.
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class IdentityProvider:
    """One configured provider: discovery, the authorization request, the code exchange and
    the checks that turn its ID token into an allowed email address. Thread-safe."""

    def __init__(self, config: OidcConfig) -> None:
        self.issuer = config.issuer
        self.allowed_domains = tuple(config.allowed_domains)
        self._client_id = config.secret("client_id").strip()
        self._client_secret = config.secret("client_secret").strip()
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.issuer).netloc

    # --- the two halves of a sign-in -------------------------------------------------------

    def authorization(self, redirect_uri: str) -> Authorization:
        metadata = self.metadata()
        state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
        client = OAuth2Client(
            None,
            client_id=self._client_id,
            scope=SCOPE,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
        )
        return Authorization(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def identify(self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        """Exchange the code and check the ID token; `SignInRefused` says what went wrong."""
        token = self._exchange(code, redirect_uri, code_verifier)
        claims = self._verified_claims(token, nonce)
        email = email_from_claims(claims, self.issuer, self.allowed_domains)
        return Identity(email=email, subject=str(claims["sub"]))

    # --- talking to the provider -----------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
                return self._metadata
        document = self._get_json(discovery_url(self.issuer), "discovery")
        # Discovery §4.3: the issuer in the document must be exactly the one configured,
        # or tokens from another issuer could be accepted under this configuration.
        if document.get("issuer") != self.issuer:
            raise SignInRefused(
                "Sign-in is not set up correctly on this server; ask your admin.",
                f"discovery issuer {document.get('issuer')!r} is not server.oidc.issuer",
                502,
            )
        missing = [
            key
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(document.get(key), str)
        ]
        if missing:
            raise SignInRefused(
                "Sign-in is not set up correctly on this server; ask your admin.",
                f"discovery document lacks {', '.join(missing)}",
                502,
            )
        with self._lock:
            self._metadata, self._metadata_at = document, time.monotonic()
        return document

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        document = self._get_json(self.metadata()["jwks_uri"], "jwks")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise SignInRefused(
                "The identity provider's signing keys could not be read; try again later.",
                f"jwks unreadable: {type(exc).__name__}",
                502,
            ) from None
        with self._lock:
            self._keys = keys
        return keys

    def _exchange(self, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        metadata = self.metadata()
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        client = OAuth2Client(None, client_id=self._client_id, client_secret=self._client_secret)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        url, headers, body = client.client_auth(_client_auth_method(metadata)).prepare(
            "POST", metadata["token_endpoint"], headers, body
        )
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT) as http:
                response = http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _unreachable("token", exc) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SignInRefused(
                "The identity provider gave an answer this server cannot read; try again.",
                f"token endpoint answered {response.status_code} without JSON",
                502,
            )
        if "error" in answer or response.status_code != 200:
            # RFC 6749 §5.2 error codes are safe to show; descriptions may not be.
            error = str(answer.get("error", response.status_code))[:60]
            raise SignInRefused(
                f"The identity provider did not accept the sign-in ({error}). Sign in again.",
                f"token endpoint: {error}",
            )
        if not isinstance(answer.get("id_token"), str):
            raise SignInRefused(
                "The identity provider sent no ID token; ask your admin to check that the "
                "openid scope is allowed.",
                "token response has no id_token",
                502,
            )
        return answer

    def _verified_claims(self, token: Mapping[str, Any], nonce: str) -> CodeIDToken:
        metadata = self.metadata()
        supported = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in SIGNING_ALGORITHMS if a in supported] or ["RS256"]
        try:
            try:
                decoded = jwt.decode(token["id_token"], self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:
                # The provider rotated its keys since they were fetched.
                keys = self._key_set(refresh=True)
                decoded = jwt.decode(token["id_token"], keys, algorithms=algorithms)
            issuers = list(GOOGLE_ISSUERS) if self.issuer in GOOGLE_ISSUERS else [self.issuer]
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": issuers},
                    "aud": {"essential": True, "value": self._client_id},
                },
                {"nonce": nonce, "client_id": self._client_id},
            )
            claims.validate(leeway=CLOCK_LEEWAY)
        except JoseError as exc:
            raise _token_refused(exc) from None
        return claims

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT) as http:
                response = http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except httpx.HTTPError as exc:
            raise _unreachable(what, exc) from None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise SignInRefused(
                "The identity provider gave an answer this server cannot read; try again.",
                f"{what} document is not a JSON object",
                502,
            )
        return document


def _client_auth_method(metadata: Mapping[str, Any]) -> str:
    """Basic authentication unless the provider lists only the POST form (Discovery §3:
    the default is client_secret_basic)."""
    supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" in supported or "client_secret_post" not in supported:
        return "client_secret_basic"
    return "client_secret_post"


def _unreachable(what: str, exc: httpx.HTTPError) -> SignInRefused:
    status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
    detail = f"status={status}" if status else type(exc).__name__
    return SignInRefused(
        "The identity provider cannot be reached right now; try again in a minute.",
        f"{what} request failed: {detail}",
        502,
    )


# What the person is told when the ID token fails a check, by the claim that failed.
_CLAIM_MESSAGES = {
    "aud": "the identity provider issued it for a different application",
    "azp": "the identity provider issued it for a different application",
    "iss": "it came from a different identity provider",
    "nonce": "it does not belong to the sign-in this page started",
    "exp": "it had expired",
    "iat": "it was issued in the future (check this server's clock)",
    "nbf": "it is not valid yet (check this server's clock)",
}


def _token_refused(exc: JoseError) -> SignInRefused:
    if isinstance(exc, ExpiredTokenError):
        claim = "exp"
    elif isinstance(exc, ClaimError):
        claim = exc.claim
    elif isinstance(exc, BadSignatureError | InvalidKeyIdError):
        claim = "signature"
    else:
        claim = type(exc).__name__
    if claim in _CLAIM_MESSAGES:
        why = _CLAIM_MESSAGES[claim]
    elif claim == "signature":
        why = "its signature does not verify against the provider's keys"
    elif isinstance(exc, ClaimError):
        why = f"its {claim} claim is missing or wrong"
    else:
        why = "it could not be read"
    return SignInRefused(
        f"Sign-in failed: the identity provider's answer was refused because {why}. "
        "Sign in again; if this keeps happening, tell your admin.",
        f"id_token refused: {claim}",
    )


# --- which address the token proves ---------------------------------------------------------


def email_from_claims(
    claims: Mapping[str, Any], issuer: str, allowed_domains: Collection[str]
) -> str:
    """The email address a verified ID token proves, if its owner may sign in here.

    - The address is ``email``. Microsoft Entra ID sends it only when asked (the ``email``
      optional claim or scope); without it, a v2.0 token's ``preferred_username`` is the
      sign-in name, often the address ("ID token claims reference", learn.microsoft.com/
      entra/identity-platform/id-token-claims-reference).
    - ``email_verified`` (OIDC Core §5.1; Google always sends it) must be true when sent.
      Entra ID never sends it; its optional claim ``xms_edov`` says whether the domain owner
      verified the address ("Optional claims reference") and must be true when sent.
    - Entra ID documents both claims as mutable and not for authorization; what makes them
      safe enough here is the pinned issuer: ``server.oidc.issuer`` must be the tenant's own
      (``https://login.microsoftonline.com/<tenant-id>/v2.0``), so only the organisation's
      directory can sign people in, and its admins set those addresses.
    - The address's domain must be in ``allowed_domains``. Google's ``hd`` names the
      Workspace domain of the account; Google says to check it when restricting sign-in to
      a domain (openid-connect guide, "Validating an ID token"), so from Google it must be
      present and allowed: a personal Google account can carry a work address too.
    """
    address = claims.get("email")
    if not isinstance(address, str) or "@" not in address:
        fallback = claims.get("preferred_username")
        address = fallback if isinstance(fallback, str) and "@" in fallback else None
    if address is None:
        raise SignInRefused(
            "The identity provider did not send your email address. Ask your admin to allow "
            "the email scope (for Microsoft Entra ID, the email optional claim).",
            "no email or preferred_username in the id_token",
            403,
        )
    email = address.strip().lower()
    if "email_verified" in claims and claims["email_verified"] not in TRUE_VALUES:
        raise SignInRefused(
            f"Your address {email} is not verified at the identity provider.",
            "email_verified is false",
            403,
        )
    if "xms_edov" in claims and claims["xms_edov"] not in TRUE_VALUES:
        raise SignInRefused(
            f"The domain of your address {email} is not verified by your organisation's "
            "directory.",
            "xms_edov is false",
            403,
        )
    allowed = {d.lower() for d in allowed_domains}
    domains = ", ".join(sorted(allowed))
    domain = email.rpartition("@")[2]
    if domain not in allowed:
        raise SignInRefused(
            f"{email} may not sign in here: only addresses at {domains} can.",
            f"email domain {domain} is not allowed",
            403,
        )
    hosted = claims.get("hd")
    from_google = issuer in GOOGLE_ISSUERS
    if (hosted is not None or from_google) and (
        not isinstance(hosted, str) or hosted.lower() not in allowed
    ):
        raise SignInRefused(
            f"Sign in with your organisation's account ({domains}), not a personal one.",
            f"hosted domain {hosted!r} is not allowed",
            403,
        )
    return email
