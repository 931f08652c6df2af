"""Page sessions and pending identity-provider sign-ins, kept in the database.

A session cookie carries a random secret; the row keyed by the secret's SHA-256 says who it
is and until when. Deleting the row (sign-out) ends the session on every replica, and a copy
of the cookie kept by someone else stops working with it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from taskplanner.clock import Clock
from taskplanner.store import models as m
from taskplanner.store.database import transaction

SESSION_KEY = "session_key"
# Time a person has at the identity provider between leaving the page and coming back.
SIGN_IN_WINDOW = timedelta(minutes=10)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    secret: str  # what the cookie carries; never stored
    email: str
    via: str  # oidc | token | local
    expires_at: datetime


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback needs from the request that sent the person to the provider."""

    nonce: str
    code_verifier: str
    redirect_uri: str
    next_url: str


class SessionStore:
    def __init__(self, db: Engine, clock: Clock, lifetime: timedelta) -> None:
        self._db = db
        self._clock = clock
        self.lifetime = lifetime

    # --- sessions ---------------------------------------------------------------------------

    def start(self, email: str, via: str) -> Session:
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        expires_at = now + self.lifetime
        with transaction(self._db) as session:
            # Sweep here rather than on a timer: sign-ins are rare, and a stale row is
            # refused by its expiry anyway.
            session.execute(delete(m.WebSession).where(col(m.WebSession.expires_at) <= now))
            session.add(
                m.WebSession(
                    id=_digest(secret),
                    email=email,
                    via=via,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return Session(secret, email, via, expires_at)

    def find(self, secret: str) -> Session | None:
        """The live session behind a cookie's secret; None once expired or ended."""
        if not secret:
            return None
        with transaction(self._db, read_only=True) as session:
            row = session.get(m.WebSession, _digest(secret))
            if row is None or row.expires_at <= self._clock():
                return None
            return Session(secret, row.email, row.via, row.expires_at)

    def end(self, secret: str) -> None:
        with transaction(self._db) as session:
            session.execute(delete(m.WebSession).where(col(m.WebSession.id) == _digest(secret)))

    # --- sign-ins at the identity provider ------------------------------------------------

    def remember_sign_in(self, state: str, pending: PendingSignIn) -> None:
        now = self._clock()
        with transaction(self._db) as session:
            session.execute(delete(m.OidcSignIn).where(col(m.OidcSignIn.expires_at) <= now))
            session.add(
                m.OidcSignIn(
                    state_hash=_digest(state),
                    nonce=pending.nonce,
                    code_verifier=pending.code_verifier,
                    redirect_uri=pending.redirect_uri,
                    next_url=pending.next_url,
                    expires_at=now + SIGN_IN_WINDOW,
                )
            )

    def take_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in begun with ``state``, exactly once: a replayed callback finds nothing.

        The row is deleted and the deletion counted in one transaction, so two requests
        racing with the same state (on two replicas) cannot both have it.
        """
        if not state:
            return None
        key = _digest(state)
        with transaction(self._db) as session:
            row = session.get(m.OidcSignIn, key)
            if row is None:
                return None
            taken = session.execute(delete(m.OidcSignIn).where(col(m.OidcSignIn.state_hash) == key))
            if getattr(taken, "rowcount", 0) != 1 or row.expires_at <= self._clock():
                return None
            return PendingSignIn(row.nonce, row.code_verifier, row.redirect_uri, row.next_url)

    # --- the key that signs cookies -------------------------------------------------------

    def shared_key(self) -> bytes:
        """A random key made by the first replica that needs one and read by the others."""
        with transaction(self._db, read_only=True) as session:
            row = session.get(m.WebSecret, SESSION_KEY)
            if row is not None:
                return row.value
        try:
            with transaction(self._db) as session:
                session.add(
                    m.WebSecret(
                        name=SESSION_KEY, value=secrets.token_bytes(32), created_at=self._clock()
                    )
                )
        except IntegrityError:
            pass  # another replica made it first; read theirs
        with transaction(self._db, read_only=True) as session:
            row = session.get(m.WebSecret, SESSION_KEY)
            if row is None:  # the insert above either won or lost: never
                raise RuntimeError("the session key could not be stored")
            return row.value
