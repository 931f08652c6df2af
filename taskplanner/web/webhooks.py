"""``POST /webhooks/{connector}``: verify, store durably, then answer 2xx.

Nothing is processed here: the inbox processor picks the delivery up afterwards, so a slow
or failing normalizer never makes the provider retry, and a crash after the 2xx loses
nothing.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import WebhookRejected
from taskplanner.inbox import DeliveryWriter
from taskplanner.runtime import Runtime
from taskplanner.web.ops import metrics_of

log = structlog.get_logger("taskplanner.webhooks")
MAX_DELIVERY_ID = 200  # Greenhouse's are UUIDs
router = APIRouter(tags=["webhooks"])


class BodyTooLarge(Exception):
    pass


class InFlight:
    """How many webhook requests are being answered right now.

    An inbox processor running as a thread of the daemon reads it (``busy``) to step aside
    while a sender waits for its 2xx: they share the interpreter lock, and acknowledging is
    what providers time out on; processing can wait a few milliseconds.
    """

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> InFlight:
        with self._lock:
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1

    def busy(self) -> bool:
        return self._count > 0


def webhooks_in_flight(app: Any) -> InFlight:
    state = app.state
    if getattr(state, "webhooks_in_flight", None) is None:
        state.webhooks_in_flight = InFlight()
    in_flight: InFlight = state.webhooks_in_flight
    return in_flight


async def read_limited(request: Request, limit: int) -> bytes:
    """Read the raw body, refusing more than ``limit`` bytes without buffering them."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def delivery_writer(app: Any) -> DeliveryWriter:
    state = app.state
    if getattr(state, "delivery_writer", None) is None:
        runtime: Runtime = state.runtime
        state.delivery_writer = DeliveryWriter(runtime.db, runtime.clock)
    writer: DeliveryWriter = state.delivery_writer
    return writer


def inbox_wakeup(request: Request) -> threading.Event | None:
    """Set when a delivery is stored, so the daemon's inbox loop runs at once."""
    event: threading.Event | None = getattr(request.app.state, "inbox_wakeup", None)
    return event


@router.post(
    "/webhooks/{connector_name}",
    summary="Receive an ATS webhook delivery",
    responses={
        401: {"description": "Missing or wrong signature; nothing stored"},
        404: {"description": "No such connector"},
        413: {"description": "Body over server.max_body_bytes"},
        503: {"description": "The database is unavailable; nothing stored, send again later"},
    },
)
async def receive(connector_name: str, request: Request) -> JSONResponse:
    with webhooks_in_flight(request.app):
        return await _receive(connector_name, request)


async def _receive(connector_name: str, request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    metrics = metrics_of(request)
    source: Any = runtime.webhook_source(connector_name)
    if source is None:
        raise HTTPException(404, f"no webhook connector named {connector_name!r}")
    try:
        body = await read_limited(request, runtime.config.server.max_body_bytes)
    except BodyTooLarge:
        metrics.deliveries_received.labels(connector_name, "too_large").inc()
        log.warning("webhook_too_large", connector=connector_name)
        raise HTTPException(413, "body too large") from None
    headers = dict(request.headers)
    try:
        source.verify_webhook(headers, body)
    except WebhookRejected as exc:
        metrics.deliveries_received.labels(connector_name, "rejected").inc()
        log.warning("webhook_rejected", connector=connector_name, reason=exc.message)
        raise HTTPException(401, "signature verification failed") from None
    try:
        delivery_id = source.delivery_id(headers, body) or hashlib.sha256(body).hexdigest()
    except Exception as exc:  # noqa: BLE001 - a verified delivery is stored whatever its id
        log.error("webhook_delivery_id_failed", connector=connector_name, error=type(exc).__name__)
        delivery_id = hashlib.sha256(body).hexdigest()
    if len(delivery_id) > MAX_DELIVERY_ID or not delivery_id.isprintable():
        # No provider sends such an id, and signatures do not cover it: keep it storable (an
        # index refuses huge keys) by its digest, still the same for every re-delivery.
        raw = delivery_id.encode("utf-8", "surrogatepass")
        delivery_id = "sha256:" + hashlib.sha256(raw).hexdigest()

    try:
        stored = await delivery_writer(request.app).store(
            connector=connector_name, delivery_id=delivery_id, headers=headers, body=body
        )
    except SQLAlchemyError as exc:
        # Not stored, so not acknowledged: the provider sends it again later.
        metrics.deliveries_received.labels(connector_name, "not_stored").inc()
        log.warning("webhook_not_stored", connector=connector_name, error=type(exc).__name__)
        return JSONResponse(
            {"status": "not stored: the database is unavailable"},
            status_code=503,
            headers={"Retry-After": "30"},
        )
    outcome = "duplicate" if stored.duplicate else "accepted"
    metrics.deliveries_received.labels(connector_name, outcome).inc()
    wakeup = inbox_wakeup(request)
    if wakeup is not None and not stored.duplicate:
        wakeup.set()
    return JSONResponse({"status": outcome, "inbox_id": stored.id}, status_code=200)
