"""The HTTP server's application: the JSON API, the coordinator's page and its assets.

``create_app`` takes a built `Runtime` (configuration, database, pipeline, clock), so the
daemon, the sandbox and the tests serve the same app.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from taskplanner import __version__
from taskplanner.runtime import Runtime
from taskplanner.web import api, ops, page, signin, webhooks
from taskplanner.web.auth import Authenticator

log = structlog.get_logger("taskplanner.web")
STATIC_DIR = Path(__file__).parent / "static"


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="taskplanner",
        version=__version__,
        summary="One task list per recruiting coordinator, kept in sync with the ATS and "
        "calendars.",
        description="Authenticate with `Authorization: Bearer <token>` (one of the tokens in "
        "`server.api_tokens_env`; a named token, `name=token`, is recorded as who acted). "
        "Without configured tokens only loopback clients are served.",
    )
    app.state.runtime = runtime
    auth = Authenticator(runtime.config.server, runtime.db, runtime.clock)
    app.state.auth = auth
    server = runtime.config.server
    if auth.loopback_only:
        log.warning(
            "web.loopback_only",
            reason="no API tokens (server.api_tokens_env), no server.oidc and no "
            "trusted_user_header configured",
            serving="loopback clients only",
        )
    else:
        log.info(
            "web.auth",
            api_tokens=len(server.api_tokens()),
            trusted_user_header=server.trusted_user_header,
            oidc_issuer=server.oidc.issuer if server.oidc else None,
        )

    app.include_router(api.router)
    app.include_router(signin.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # --- routers of the rest of the daemon (lead): webhooks, ops (healthz/readyz/metrics) ---
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    # --- end of the lead's routers ---

    return app
