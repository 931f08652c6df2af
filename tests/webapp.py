"""Building the web app for tests: a configuration made in Python, a runtime on the test
database, data fed as snapshots through the real pipeline, and the app served by uvicorn on
127.0.0.1 in a thread when a test needs a real HTTP server (or a browser)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from taskplanner.clock import Clock
from taskplanner.config import Config
from taskplanner.domain import snapshots as sn
from taskplanner.runtime import Runtime
from taskplanner.web.app import create_app
from tests import factories as f

TOKEN = "tp-test-token-4f9a1c"
SECOND_TOKEN = "tp-test-token-other-77b2"
SAM_STAGES = (
    f.stage("s2-review", "Application Review", 0),
    f.stage("s2-phone", "Phone Screen", 1, ("k2-phone", "Phone call")),
    f.stage("s2-onsite", "Onsite", 2, ("k2-onsite", "Onsite loop")),
)
PEOPLE = [
    {"email": f.CORA, "name": "Cora Coordinator", "role": "coordinator"},
    {"email": f.SAM, "name": "Sam Recruiter", "role": "recruiter"},
    {"email": f.ADA, "name": "Ada Admin", "role": "admin"},
]


def make_config(
    db_url: str,
    *,
    tokens: list[str] | None = None,
    trusted_user_header: str | None = None,
    digest: dict[str, Any] | None = None,
    timezone: str = "Europe/Berlin",
    public_url: str | None = None,
    rules: dict[str, Any] | None = None,
    connectors: dict[str, Any] | None = None,
    oidc: dict[str, Any] | None = None,
    server_extra: dict[str, Any] | None = None,

    people: list[dict[str, Any]] | None = None,
    jobs: list[dict[str, Any]] | None = None,
    notifications: dict[str, Any] | None = None,
) -> Config:
    """``oidc`` holds ``[server.oidc]`` plus ``client_id``/``client_secret`` values."""
    server: dict[str, Any] = {"trusted_user_header": trusted_user_header, **(server_extra or {})}
    if tokens:
        server["api_tokens_env"] = "TASKPLANNER_API_TOKENS"
    if public_url:
        server["public_url"] = public_url
    oidc_secrets: dict[str, str] = {}
    if oidc is not None:
        oidc = dict(oidc)
        oidc_secrets = {name: oidc.pop(name) for name in ("client_id", "client_secret")}
        server["oidc"] = {
            "client_id_env": "OIDC_CLIENT_ID",
            "client_secret_env": "OIDC_CLIENT_SECRET",
            **oidc,
        }
    data: dict[str, Any] = {
        "organisation": {"name": "Acme", "account_owner": f.ADA, "timezone": timezone},
        "database": {"url": db_url},
        "server": server,
        "rules": {"scheduling_stages": ["Phone Screen", "Onsite"], **(rules or {})},
        "people": PEOPLE + (people or []),
        "jobs": jobs or [],
    }
    if connectors:
        data["connectors"] = connectors
    if digest is not None:
        data["digest"] = {"smtp_url_env": "TASKPLANNER_SMTP_URL", **digest}
    if notifications is not None:
        data["notifications"] = notifications
    config = Config.model_validate(data)
    if tokens:
        config.server.set_secret("api_tokens", ",".join(tokens))
    if config.server.oidc is not None:
        for name, value in oidc_secrets.items():
            config.server.oidc.set_secret(name, value)
    return config


def make_runtime(db_url: str, clock: Clock, **kwargs: Any) -> Runtime:
    # The fixtures' databases are migrated already.
    return Runtime.from_config(make_config(db_url, **kwargs), clock=clock, migrate=False)


def candidates_in_phone_screen(
    first: int, count: int, *, job_id: str = "j1", stage: str = "s-phone", name: str = "Person"
) -> list[sn.Snapshot]:
    """``count`` candidates entering the job's Phone Screen: one ready_to_schedule each."""
    out: list[sn.Snapshot] = []
    for i in range(first, first + count):
        out.append(f.candidate(f"c{i}", name=f"{name} {i}", email=f"p{i}@example.com"))
        out.append(
            f.application(f"a{i}", candidate_id=f"c{i}", job_id=job_id, stage=stage, updated=1)
        )
    return out


def seed_two_coordinators(runtime: Runtime, per_person: int = 3) -> None:
    """Job j1 coordinated by Cora and j2 by Sam, each with candidates ready to schedule
    (plus each job's new_job task)."""
    runtime.pipeline.ingest_now(
        [
            f.job("j1", name="Software Engineer"),
            f.job("j2", name="Data Analyst", coordinator=f.SAM, stages=SAM_STAGES),
            *candidates_in_phone_screen(1, per_person),
            *candidates_in_phone_screen(
                100, per_person, job_id="j2", stage="s2-phone", name="Analyst"
            ),
        ]
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def app_for(runtime: Runtime) -> FastAPI:
    return create_app(runtime)
