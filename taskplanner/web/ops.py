"""Operator endpoints: liveness, readiness (database, migrations, integrations), metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from taskplanner import health
from taskplanner.metrics import Metrics
from taskplanner.runtime import Runtime
from taskplanner.store import models as m
from taskplanner.store.database import transaction
from taskplanner.store.migrate import current_revision, head_revision

router = APIRouter(tags=["operations"])


def app_metrics(app: FastAPI) -> Metrics:
    """The app's metrics, created on first use (one registry per app, not global)."""
    state = app.state
    if getattr(state, "metrics", None) is None:
        runtime: Runtime = state.runtime
        state.metrics = Metrics(runtime.db, runtime.clock, runtime.built_connectors)
    metrics: Metrics = state.metrics
    return metrics


def metrics_of(request: Request) -> Metrics:
    return app_metrics(request.app)


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


def _readiness(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    body: dict[str, Any] = {"database": "ok"}
    try:
        with transaction(runtime.db, read_only=True) as session:
            session.execute(text("SELECT 1"))
            integrations = {
                row.connector: _integration(row)
                for row in session.scalars(select(m.IntegrationHealth))
            }
        revision = current_revision(runtime.db)
    except SQLAlchemyError as exc:
        return False, {"status": "not ready", "database": f"unreachable ({type(exc).__name__})"}
    ready = revision == head_revision()
    body["migrations"] = "current" if ready else f"at {revision}, need {head_revision()}"
    for name in runtime.config.enabled_connectors():
        integrations.setdefault(
            name,
            {"state": "ok", "last_error": None, "last_success_at": None, "last_failure_at": None},
        )
    body["integrations"] = integrations
    body["status"] = "ready" if ready else "not ready"
    return ready, body


def _integration(row: m.IntegrationHealth) -> dict[str, Any]:
    """One integration's state; its error only while it is failing or broken.

    After a recovery the error is history: ``last_failure_at`` says when it was, and the
    broken_integration task keeps the text.
    """
    return {
        "state": row.state,
        "last_error": row.last_error if row.state != health.OK else None,
        "last_success_at": _iso(row.last_success_at),
        "last_failure_at": _iso(row.last_failure_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@router.get(
    "/readyz",
    summary="Database reachable, migrations current; per-integration state",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request) -> JSONResponse:
    ready, body = await run_in_threadpool(_readiness, request.app.state.runtime)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    payload = await run_in_threadpool(metrics_of(request).render)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
