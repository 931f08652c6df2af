"""Lever webhook deliveries: the signature inside the body, its freshness, the delivery id and
what the event points at.

Docs: https://hire.lever.co/developer/documentation#webhooks. A delivery is a JSON body
``{"triggeredAt": <ms>, "event": ..., "data": {...}, "token": ..., "signature": ...}`` with no
signature header; ``signature`` is the hex HMAC-SHA256, keyed with the webhook's signature
token, of ``token + triggeredAt`` ("Request signing"). That covers neither ``event`` nor
``data``, so the body is not trusted beyond the ids it names: the connector fetches what they
point to. Lever makes one signature token per event type, so several may be configured.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.base import MalformedPayloadError, WebhookRejected, load_json
from connectors.lever.mapping import from_ms

# Freshness: Lever documents no window. The signature covers ``triggeredAt``, so a captured
# delivery replayed later fails this check. Five minutes is the default tolerance of Stripe's
# libraries for the same check (https://docs.stripe.com/webhooks, "Prevent replay attacks").
# A triggeredAt ahead of our clock is accepted: only Lever can sign one, and a copy of it
# grows stale like any other. A Lever retry that arrives later than that is
# refused too; what it pointed at is read again by the next poll.
MAX_SKEW = timedelta(minutes=5)

# "Webhooks": the events a webhook can be set up for.
OPPORTUNITY_EVENTS = frozenset(
    {
        "applicationCreated",
        "candidateStageChange",
        "candidateArchiveChange",
        "candidateHired",
        "candidateDeleted",
    }
)
INTERVIEW_EVENTS = frozenset({"interviewCreated", "interviewUpdated", "interviewDeleted"})
# A contact is the person behind opportunities; its name and e-mail reach us with every
# opportunity read, and contacts carry no time to order changes by.
IGNORED_EVENTS = frozenset({"contactCreated", "contactUpdated"})

_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


_TOKEN = re.compile(r"[\x21-\x7e]{1,200}")
# Lever's ids are UUIDs ("250d8f03-738a-4bba-a671-8a3d73477145" in every documented example);
# a little wider here, never a character a path would need escaped.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


@dataclass(frozen=True)
class LeverEvent:
    """A verified delivery: its event, what ``data`` names, and when Lever sent it."""

    event: str
    data: dict[str, Any]
    triggered_at: datetime

    def id(self, name: str) -> str | None:
        """An id ``data`` names, or None when absent or not shaped like Lever's ids (UUIDs):
        it goes into an API path, where anything else would be refused or mean another
        resource; the signature does not cover ``data``."""
        value = self.data.get(name)
        return value if isinstance(value, str) and _ID.fullmatch(value) else None


def sign(token: str, triggered_at: int, signature_token: str) -> str:
    """The ``signature`` Lever puts in the body: hex HMAC-SHA256 of ``token + triggeredAt``."""
    message = f"{token}{triggered_at}".encode()
    return hmac.new(signature_token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_tokens(secret: str | None) -> list[str]:
    """The configured signature tokens: one per Lever webhook, separated by spaces or commas."""
    return [t for t in re.split(r"[\s,]+", secret or "") if t]


def verify(connector: str, tokens: Iterable[str], body: bytes, *, now: datetime) -> dict[str, Any]:
    """The decoded body when its signature holds under one of ``tokens`` and its
    ``triggeredAt`` is no older than `MAX_SKEW` before ``now``; else WebhookRejected (401).

    Only what the signature needs is read before it is checked, and no field of the body
    is echoed in the reason.
    """
    candidates = list(tokens)
    if not candidates:
        raise WebhookRejected(connector, "no webhook signature token configured", status=401)
    try:
        document = load_json(body)
    except ValueError as exc:
        raise WebhookRejected(connector, f"{exc}: no signature to check", status=401) from None
    if not isinstance(document, dict):
        raise WebhookRejected(connector, "body is not a JSON object", status=401)
    signature, token, triggered = (
        document.get("signature"),
        document.get("token"),
        document.get("triggeredAt"),
    )
    if not isinstance(signature, str) or not signature:
        raise WebhookRejected(connector, "missing signature", status=401)
    if not isinstance(token, str) or not token:
        raise WebhookRejected(connector, "missing token", status=401)
    if not _TOKEN.fullmatch(token):
        # Lever's tokens are hex; a token that is not printable ASCII (a lone surrogate from
        # a mangled body, say) cannot have been signed by Lever.
        raise WebhookRejected(connector, "malformed token", status=401)
    if isinstance(triggered, bool) or not isinstance(triggered, int):
        raise WebhookRejected(connector, "missing or non-integer triggeredAt", status=401)
    if not _HEX.match(signature):
        raise WebhookRejected(connector, "malformed signature", status=401)
    given = signature.lower()
    if not any(hmac.compare_digest(sign(token, triggered, t), given) for t in candidates):
        raise WebhookRejected(
            connector, "signature does not match token and triggeredAt", status=401
        )
    moment = from_ms(triggered)
    assert moment is not None  # noqa: S101 - an int always converts
    if moment < now - MAX_SKEW:
        raise WebhookRejected(
            connector,
            f"stale delivery: triggeredAt is {_age(now - moment)} old "
            f"(at most {_age(MAX_SKEW)} accepted)",
            status=401,
        )
    return document


def delivery_id(body: bytes) -> str | None:
    """The body's ``token``: random per delivery, and the docs suggest remembering it to refuse
    replays; a retry of the same delivery carries it again, so it is stored once."""
    try:
        document = load_json(body)
    except ValueError:
        return None
    token = document.get("token") if isinstance(document, dict) else None
    return f"token:{token}" if isinstance(token, str) and token else None


def read_event(connector: str, body: bytes) -> LeverEvent:
    """The event, its data and time from a verified body; MalformedPayloadError otherwise."""
    try:
        document = load_json(body)
    except ValueError as exc:
        raise MalformedPayloadError(connector, str(exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("event"), str):
        raise MalformedPayloadError(connector, "no event in the delivery")
    data = document.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedPayloadError(connector, f"{document['event']}: data is not an object")
    triggered = from_ms(document.get("triggeredAt"))
    if triggered is None:
        raise MalformedPayloadError(connector, "no triggeredAt in the delivery")
    return LeverEvent(document["event"], data, triggered)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    return f"{seconds // 3600}h"
