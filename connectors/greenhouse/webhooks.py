"""Greenhouse webhook deliveries: the signature over the raw body, the delivery id, parsing.

Docs: github.com/grnhse/greenhouse-api-docs source/includes/webhooks/_introduction.md
(``Signature: sha256 <hex>``, ``Greenhouse-Event-ID``, the ``{"action", "payload"}`` body).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from connectors.base import (
    MalformedPayloadError,
    ParsedDelivery,
    UnknownEventError,
    WebhookRejected,
    load_json,
)
from connectors.greenhouse.mapping import Links, UnhandledAction, snapshots_from_webhook

SIGNATURE_HEADER = "Signature"
EVENT_ID_HEADER = "Greenhouse-Event-ID"


def signature(body: bytes, secret: str) -> str:
    """The ``Signature`` header value Greenhouse sends: ``sha256 <hex HMAC-SHA256>``."""
    return "sha256 " + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(
    connector: str, secret: str | None, headers: Mapping[str, str], body: bytes
) -> None:
    """Check ``Signature: sha256 <hex>``: HMAC-SHA256 of the raw body with the secret key.

    The digest covers the body exactly as sent, Unicode escapes included
    (webhooks/_introduction.md "Authentication"), so never re-serialise before checking.
    """
    if not secret:
        raise WebhookRejected(connector, "no webhook secret configured", status=401)
    header_value = header(headers, SIGNATURE_HEADER)
    if not header_value:
        raise WebhookRejected(connector, "missing Signature header", status=401)
    algorithm, _, given = header_value.strip().partition(" ")
    if algorithm.lower() != "sha256" or not given:
        raise WebhookRejected(connector, "malformed Signature header", status=401)
    expected = signature(body, secret).partition(" ")[2]
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise WebhookRejected(connector, "signature does not match the body", status=401)


def delivery_id(headers: Mapping[str, str], body: bytes) -> str:
    """``Greenhouse-Event-ID`` (unique per delivery), else a digest of the body."""
    event_id = header(headers, EVENT_ID_HEADER)
    if event_id:
        return event_id.strip()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def parse_delivery(
    connector: str,
    body: bytes,
    *,
    now: datetime,
    user_emails: Mapping[int, str],
    links: Links,
) -> ParsedDelivery:
    """Map one verified delivery to snapshots (see `snapshots_from_webhook` for the times)."""
    try:
        document = load_json(body)
    except ValueError as exc:
        raise MalformedPayloadError(connector, str(exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("action"), str):
        raise MalformedPayloadError(connector, "no action in the delivery")
    action: str = document["action"]
    payload = document.get("payload")
    if action == "ping":
        return ParsedDelivery(event_type=action, snapshots=[], is_ping=True)
    if not isinstance(payload, dict):
        raise MalformedPayloadError(connector, f"{action[:100]!r}: no payload object")
    try:
        snapshots = snapshots_from_webhook(
            action, payload, now=now, user_emails=user_emails, links=links
        )
    except UnhandledAction:
        raise UnknownEventError(connector, f"unhandled Greenhouse event {action[:100]!r}") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise MalformedPayloadError(
            connector, f"{action[:100]!r}: unexpected payload ({type(exc).__name__}: {exc})"[:500]
        ) from None
    return ParsedDelivery(event_type=action, snapshots=snapshots)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (the inbox stores them as received)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
