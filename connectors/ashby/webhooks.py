"""Ashby webhook deliveries: the signature over the raw body, the delivery id, parsing.

Docs (developers.ashbyhq.com): /docs/authenticating-webhooks (``Ashby-Signature:
sha256=<hex HMAC-SHA256 of the raw body with the webhook's secret token>``), /docs/setting-up-
webhooks (the secret token; a ``ping`` on creation), /docs/common-payload-data (``{"action",
"data"}``) and the OpenAPI ``webhooks`` section for each ``data`` schema.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from connectors.ashby.mapping import (
    IncompleteRecord,
    Links,
    UnhandledAction,
    affected_resource,
    snapshots_from_webhook,
)
from connectors.base import (
    MalformedPayloadError,
    ParsedDelivery,
    UnknownEventError,
    WebhookRejected,
    load_json,
)

SIGNATURE_HEADER = "Ashby-Signature"


def signature(body: bytes, secret: str) -> str:
    """The ``Ashby-Signature`` value Ashby sends for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(
    connector: str, secret: str | None, headers: Mapping[str, str], body: bytes
) -> None:
    """Check ``Ashby-Signature: sha256=<hex>`` against the raw bytes as received."""
    if not secret:
        raise WebhookRejected(connector, "no webhook secret configured", status=401)
    value = header(headers, SIGNATURE_HEADER)
    if not value:
        raise WebhookRejected(connector, "missing Ashby-Signature header", status=401)
    algorithm, sep, given = value.strip().partition("=")
    if not sep or algorithm.strip().lower() != "sha256" or not given.strip():
        raise WebhookRejected(connector, "malformed Ashby-Signature header", status=401)
    expected = signature(body, secret).partition("=")[2]
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise WebhookRejected(connector, "signature does not match the body", status=401)


def delivery_id(body: bytes) -> str:
    """What tells a re-delivery from a new event: ``<action>:<kind>:<id>:<updatedAt>``.

    The OpenAPI payload schemas carry no delivery id (the ``webhookActionId`` of
    /docs/common-payload-data is not in them, and where sent it is shared by the related
    webhooks of one change), so a delivery is known by the resource it is about and that
    resource's ``updatedAt``: a retry repeats both, a new change moves ``updatedAt``. The action
    keeps related webhooks (candidateStageChange + applicationUpdate of one move) apart.
    Payloads without such a resource (ping, candidateDelete) fall back to a digest of the body.
    """
    try:
        document = load_json(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("action"), str):
        resource = affected_resource(document["action"], document.get("data"))
        if resource is not None and resource[2] is not None:
            kind, resource_id, updated_at = resource
            return f"{document['action']}:{kind}:{resource_id}:{updated_at}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


def parse_delivery(connector: str, body: bytes, *, now: datetime, links: Links) -> ParsedDelivery:
    """Map one verified delivery to snapshots."""
    try:
        document = load_json(body)
    except ValueError as exc:
        raise MalformedPayloadError(connector, str(exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("action"), str):
        raise MalformedPayloadError(connector, "no action in the delivery")
    action: str = document["action"]
    if action == "ping":
        return ParsedDelivery(event_type=action, snapshots=[], is_ping=True)
    data = document.get("data")
    if not isinstance(data, dict):
        raise MalformedPayloadError(connector, f"{action[:100]}: no data object")
    try:
        snapshots = snapshots_from_webhook(action, data, now=now, links=links)
    except UnhandledAction:
        raise UnknownEventError(connector, f"unhandled Ashby event {action[:100]!r}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IncompleteRecord) as exc:
        raise MalformedPayloadError(
            connector, f"{action[:100]}: unexpected payload ({type(exc).__name__}: {exc})"[:500]
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
