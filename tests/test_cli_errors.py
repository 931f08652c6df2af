"""Every command fails the way a person can act on: one line per problem, the key and the file
named, exit 2 for configuration and usage, 1 for an unreachable database or a failing provider;
never a traceback for an expected failure, never a secret or the configuration's values."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from taskplanner.cli import app
from taskplanner.clock import system_clock
from taskplanner.config import ATS_CONNECTOR_TYPES, CALENDAR_CONNECTOR_TYPES
from taskplanner.logsetup import configure_logging
from taskplanner.providers import PROVIDERS, available_types
from taskplanner.runtime import connector_available
from taskplanner.sandbox.fake_greenhouse import FakeGreenhouse, seed_organisation
from taskplanner.store import models as m
from taskplanner.store.database import describe_error, transaction
from tests.daemon_harness import cli_command, cli_env, daemon_process
from tests.webapp import free_port, make_runtime, seed_two_coordinators

# Recognisable values: none may show up in any output of a failing (or succeeding) command.
MARKER = "SECRET-"
SECRET_ENV = {
    "GH_ID": "gh-id-SECRET-3333",
    "GH_SECRET": "gh-secret-SECRET-4444",
    "LEVER_KEY": "lever-key-SECRET-5555",
    "API_TOKENS": "tok-SECRET-1111",
    "SMTP_URL": "smtp://mailer:pw-SECRET-8888@127.0.0.1:9",
}
# A configuration value that must never be dumped wholesale (as a traceback's locals did).
ORG_NAME = "Org-VALUE-7d1e"
DB_PASSWORD = "db-pw-SECRET-2222"
# Commands that start from the configuration, with the arguments they need.
COMMANDS = [
    ["config", "check"],
    ["run"],
    ["sync"],
    ["tasks", "list"],
    ["tasks", "complete", "1"],
    ["reassign", "--from", "cora@acme.example", "--to", "sam@acme.example"],
    ["db", "upgrade"],
    ["inbox", "list"],
    ["inbox", "retry", "1"],
    ["digest", "send"],
    ["status"],
]


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    return SECRET_ENV


def write_config(
    path: Path,
    database_url: str,
    *,
    connectors: str | None = None,
    extra: str = "",
) -> Path:
    if connectors is None:
        connectors = """
[connectors.greenhouse]
type = "greenhouse"
base_url = "http://127.0.0.1:9"
auth_url = "http://127.0.0.1:9"
client_id_env = "GH_ID"
client_secret_env = "GH_SECRET"
"""
    path.write_text(
        f"""
[organisation]
name = "{ORG_NAME}"
account_owner = "ada@acme.example"

[database]
url = "{database_url}"

[server]
api_tokens_env = "API_TOKENS"

[digest]
smtp_url_env = "SMTP_URL"
from = "taskplanner@acme.example"
{connectors}
{extra}"""
    )
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_clean(*outputs: str) -> None:
    """No traceback, no secret, no configuration dump."""
    for output in outputs:
        assert "Traceback" not in output, output
        assert MARKER not in output, output
        assert ORG_NAME not in output, output


# --------------------------------------------------------------------------- connector types


NOT_BUILT = sorted(
    t for t in ATS_CONNECTOR_TYPES | CALENDAR_CONNECTOR_TYPES if not connector_available(t)
)


@pytest.mark.parametrize("connector_type", NOT_BUILT)
def test_sync_with_a_connector_type_not_built_exits_2_with_one_line(
    tmp_path: Path, connector_type: str
) -> None:
    # The installed command, as the user ran it (it printed ~200 lines with locals).
    config = write_config(
        tmp_path / "tp.toml",
        f"postgresql+psycopg://tp:{DB_PASSWORD}@127.0.0.1:9/tp",
        connectors=f"""
[connectors.ats]
type = "{connector_type}"
api_key_env = "LEVER_KEY"
""",
    )
    result = subprocess.run(
        cli_command("sync", "--config", str(config)),
        env=cli_env(SECRET_ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"connectors.ats.type: the {PROVIDERS[connector_type].display_name} connector is not "
        f"available in this version of taskplanner (available: "
        f"{', '.join(available_types(ats=PROVIDERS[connector_type].is_ats))}); "
        f"set enabled = false to keep the section ({config})"
    ]
    assert_clean(result.stderr)


def without_greenhouse(monkeypatch: pytest.MonkeyPatch) -> None:
    """This build, as if its Greenhouse connector module were not part of it."""
    missing = dataclasses.replace(PROVIDERS["greenhouse"], connector="connectors.not_built:Gone")
    monkeypatch.setitem(PROVIDERS, "greenhouse", missing)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_connector_type_this_build_has_no_connector_for(
    tmp_path: Path,
    secret_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    # A build without the Greenhouse connector: the same rule that refuses Lever and Ashby
    # until their connectors land (and stops refusing them by itself when they do).
    without_greenhouse(monkeypatch)
    config = write_config(tmp_path / "tp.toml", f"sqlite:///{tmp_path / 'tp.db'}")

    code, out, err = invoke(*command, "--config", str(config))

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"connectors.greenhouse.type: the Greenhouse connector is not available in this "
        f"version of taskplanner (available: {', '.join(available_types(ats=True))}); "
        f"set enabled = false to keep the section ({config})"
    ]
    assert not (tmp_path / "tp.db").exists()  # stopped before touching anything


def test_a_disabled_section_of_a_type_not_built_is_accepted(
    tmp_path: Path, secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    without_greenhouse(monkeypatch)
    config = write_config(tmp_path / "tp.toml", f"sqlite:///{tmp_path / 'tp.db'}")
    config.write_text(config.read_text() + "enabled = false\n")

    code, out, err = invoke("config", "check", "--config", str(config))

    assert code == 0, err
    assert "disabled" in out


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_prints_every_config_problem_and_exits_2(
    tmp_path: Path, secret_env: dict[str, str], command: list[str]
) -> None:
    config = write_config(
        tmp_path / "tp.toml",
        f"sqlite:///{tmp_path / 'tp.db'}",
        extra='[rules]\njob_live_witin = "24h"\nintegration_failure_threshold = 0\n',
    )
    config.write_text(config.read_text().replace('"GH_SECRET"', '"GH_SECRET_UNSET"'))

    code, out, err = invoke(*command, "--config", str(config))

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "rules.job_live_witin: unknown key (did you mean 'job_live_within'?) " f"({config})",
        "rules.integration_failure_threshold: must be greater than or equal to 1, got 0 "
        f"({config})",
        "connectors.greenhouse.client_secret_env: environment variable GH_SECRET_UNSET is "
        f"not set ({config})",
    ]
    assert_clean(err)


# --------------------------------------------------------------------------- database


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if c[0] not in ("config", "status")],
    ids=" ".join,
)
def test_an_unreachable_database_is_one_line_naming_the_cause_without_the_password(
    tmp_path: Path, secret_env: dict[str, str], command: list[str]
) -> None:
    # Port 9 (discard) has no server on the test machine: the connection is refused at once.
    config = write_config(
        tmp_path / "tp.toml", f"postgresql+psycopg://tp:{DB_PASSWORD}@127.0.0.1:9/tp"
    )

    code, out, err = invoke(*command, "--config", str(config))

    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(("database.url: cannot open the database: ", "database: ")), line
    assert "Connection refused" in line
    assert "OperationalError" in line
    assert_clean(err)


def test_status_names_why_the_database_is_unreachable_without_the_password(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    config = write_config(
        tmp_path / "tp.toml", f"postgresql+psycopg://tp:{DB_PASSWORD}@127.0.0.1:9/tp"
    )

    code, out, err = invoke("status", "--config", str(config))

    assert code == 1
    assert out.splitlines()[:2] == [
        "taskplanner: NOT READY",
        "database: postgresql+psycopg://tp:***@127.0.0.1:9/tp: unreachable: connection failed: "
        'connection to server at "127.0.0.1", port 9 failed: Connection refused '
        "(OperationalError)",
    ]
    assert_clean(out, err)


@pytest.mark.parametrize("command", [["run"], ["db", "upgrade"], ["tasks", "list"]], ids=" ".join)
def test_a_sqlite_file_in_a_missing_directory_is_one_line(
    tmp_path: Path, secret_env: dict[str, str], command: list[str]
) -> None:
    config = write_config(tmp_path / "tp.toml", f"sqlite:///{tmp_path / 'gone' / 'tp.db'}")

    code, out, err = invoke(*command, "--config", str(config))

    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(("database.url: cannot open the database: ", "database: ")), line
    assert "unable to open database file" in line or "No such file or directory" in line
    assert_clean(err)


# --------------------------------------------------------------------------- arguments


BAD_ARGUMENTS = [
    (["tasks", "list", "--limit", "abc"], "taskplanner tasks list: Invalid value for '--limit'"),
    (["tasks", "list", "--limit", "0"], "taskplanner tasks list: Invalid value for '--limit'"),
    (["tasks", "list", "--all", "--completed"], "--all and --completed cannot be used together"),
    (["tasks", "list", "--category", "urgent"], "--category: unknown category 'urgent'"),
    (["tasks", "list", "--colour"], "taskplanner tasks list: No such option: --colour"),
    (["tasks", "complete", "seven"], "taskplanner tasks complete: Invalid value for 'TASK_ID'"),
    (["tasks", "complete"], "taskplanner tasks complete: Missing argument 'TASK_ID'"),
    (["reassign", "--from", "cora@acme.example"], "--to: missing (who stands in), or --clear"),
    (["inbox", "list", "--limit", "-1"], "taskplanner inbox list: Invalid value for '--limit'"),
    (["sandbox", "--port", "70000"], "taskplanner sandbox: Invalid value for '--port'"),
    (["run", "--log-level", "loud"], "--log-level: unknown log level 'loud'"),
    (["frobnicate"], "taskplanner: No such command 'frobnicate'"),
    (["--frobnicate"], "taskplanner: No such option: --frobnicate"),
]


@pytest.mark.parametrize(
    ("argv", "expected"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS]
)
def test_a_bad_argument_is_one_line_naming_it_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./taskplanner.toml: arguments are checked before the file
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)

    code, out, err = invoke(*argv)

    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.lower().startswith(expected.lower()), line


def test_sync_of_an_unknown_source_suggests_the_configured_one(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    config = write_config(tmp_path / "tp.toml", f"sqlite:///{tmp_path / 'tp.db'}")

    code, _, err = invoke("sync", "greenhose", "--config", str(config))

    assert code == 2
    assert err.splitlines() == [
        f"no enabled connector named 'greenhose', did you mean 'greenhouse'? ({config})"
    ]


# --------------------------------------------------------------------------- providers


def test_sync_never_prints_the_credentials_a_provider_accepts_or_rejects(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    with FakeGreenhouse(
        client_id=SECRET_ENV["GH_ID"], client_secret=SECRET_ENV["GH_SECRET"]
    ) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=1)
        config = write_config(
            tmp_path / "tp.toml",
            f"sqlite:///{tmp_path / 'tp.db'}",
            connectors=f"""
[connectors.greenhouse]
type = "greenhouse"
base_url = "{fake.base_url}"
auth_url = "{fake.auth_url}"
client_id_env = "GH_ID"
client_secret_env = "GH_SECRET"
""",
        )
        code, out, err = invoke("sync", "--config", str(config))
        assert code == 0, err
        assert out.startswith("greenhouse: ok")

        fake.revoke_credentials()
        code, out, err = invoke("sync", "--config", str(config))
        tokens = list(fake._tokens)  # every access token the fake issued

    assert code == 1
    assert out == ""
    assert "greenhouse: failed: greenhouse:" in err and "(HTTP 401)" in err
    assert_clean(out, err)
    for token in tokens:
        assert token not in err


# --------------------------------------------------------------------------- tasks list --json


SPEC_TASK_FIELDS = {
    "id", "category", "title", "recommended_action", "assignee", "status", "resolution",
    "completed_by", "job_id", "stage_id", "application_id", "candidate_id", "schedule_id",
    "event_id", "attendee", "integration", "created_at", "due_at", "completed_at",
}  # fmt: skip


def test_tasks_list_json_prints_json_lines_as_its_help_says(
    db_url: str, tmp_path: Path, secret_env: dict[str, str]
) -> None:
    runtime = make_runtime(db_url, clock=system_clock)
    seed_two_coordinators(runtime, per_person=2)
    runtime.close()
    config = write_config(tmp_path / "tp.toml", db_url)

    code, out, err = invoke("tasks", "list", "--json", "--config", str(config))
    _, help_text, _ = invoke("tasks", "list", "--help")

    assert code == 0, err
    assert "JSON lines" in help_text
    lines = out.splitlines()
    tasks = [json.loads(line) for line in lines]  # each line is one whole JSON value
    assert len(tasks) == 6  # two new_job + four ready_to_schedule
    assert all(isinstance(task, dict) for task in tasks)
    assert all(task.keys() >= SPEC_TASK_FIELDS for task in tasks)
    assert [task["id"] for task in tasks] == sorted((task["id"] for task in tasks), reverse=True)
    assert {task["category"] for task in tasks} == {"new_job", "ready_to_schedule"}

    code, out, _ = invoke("tasks", "list", "--json", "--completed", "--config", str(config))
    assert (code, out) == (0, "")  # no tasks: no lines (not "[]", not "no tasks")


# --------------------------------------------------------------------------- logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _connect(url: str) -> None:
    config = {"organisation": ORG_NAME, "password": DB_PASSWORD}  # a local, like the config was
    raise ConnectionError(f"cannot reach {url} for {len(config)} settings")


def test_a_failing_statement_never_carries_the_row_values(db: Engine) -> None:
    row = {
        "id": "c1", "name": "Pat SECRET-name", "email": "pat-SECRET@example.com",
        "updated_at": datetime.now(UTC), "content_hash": "h",
    }  # fmt: skip
    with transaction(db) as session:
        session.add(m.Candidate(**row))
    with pytest.raises(IntegrityError) as error, transaction(db) as session:
        session.add(m.Candidate(**row))  # the same id again

    # What a log line or `taskplanner` would show: the constraint, never the candidate.
    assert "candidates" in str(error.value)
    assert MARKER not in str(error.value)
    assert MARKER not in describe_error(error.value)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
def test_a_logged_traceback_shows_no_local_variables_and_no_password(
    restore_logging: None, as_json: bool
) -> None:
    stream = io.StringIO()
    configure_logging("warning", json=as_json, stream=stream)
    try:
        _connect(f"postgresql+psycopg://tp:{DB_PASSWORD}@db.internal/tp")
    except ConnectionError:
        structlog.get_logger("taskplanner.test").exception("sync_crashed", connector="ats")

    text = stream.getvalue()
    assert "Traceback" in text and "_connect" in text  # a bug still shows where it happened
    assert "cannot reach postgresql+psycopg://tp:***@db.internal/tp" in text
    assert MARKER not in text
    assert ORG_NAME not in text


# --------------------------------------------------------------------------- the daemon


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_the_daemon_never_shows_a_secret_in_logs_pages_api_or_metrics(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    port = free_port()
    env = {**SECRET_ENV, "GH_HOOK": "hook-SECRET-6666"}
    with FakeGreenhouse(client_id=env["GH_ID"], client_secret=env["GH_SECRET"]) as fake:
        seed_organisation(fake, jobs=1, applications_per_job=2)
        config = write_config(
            tmp_path / "tp.toml",
            f"sqlite:///{tmp_path / 'tp.db'}",
            connectors=f"""
[connectors.greenhouse]
type = "greenhouse"
base_url = "{fake.base_url}"
auth_url = "{fake.auth_url}"
client_id_env = "GH_ID"
client_secret_env = "GH_SECRET"
webhook_secret_env = "GH_HOOK"
poll_interval = "1s"
""",
            extra='[daemon]\ninbox_worker = "thread"\n',
        )
        config.write_text(config.read_text().replace("[server]\n", f"[server]\nport = {port}\n"))
        run = ["run", "--config", str(config), "--log-level", "debug"]
        with daemon_process(run, port=port, workdir=tmp_path, env=env) as daemon:
            daemon.wait_until_serving(timeout=90)
            bodies: list[str] = []

            def integration() -> dict[str, Any]:
                body = httpx.get(daemon.url + "/readyz", timeout=10)
                bodies.append(body.text)
                state: dict[str, Any] = body.json()["integrations"]["greenhouse"]
                return state

            _eventually(lambda: integration()["last_success_at"] is not None, "a first sync")
            fake.revoke_credentials()
            _eventually(lambda: integration()["state"] == "broken", "the integration to break")

            token = {"Authorization": f"Bearer {env['API_TOKENS']}"}
            wrong = {"Authorization": "Bearer wrong-SECRET-0000"}
            with httpx.Client(base_url=daemon.url, timeout=10) as http:
                responses = [
                    http.get("/api/tasks", headers=token),
                    http.get("/api/tasks", headers=wrong),
                    http.get("/", headers=token),
                    http.get("/metrics"),
                    http.post("/webhooks/greenhouse", content=b"{}", headers={"Signature": "x"}),
                ]
            assert responses[0].status_code == 200
            assert responses[1].status_code == 401
            bodies += [r.text for r in responses]
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
            logs, output = daemon.logs(), daemon.output()

    assert "integration_broken" in logs  # the failure is logged, just never with a secret
    for text in (logs, output, *bodies):
        assert MARKER not in text
    for access_token in fake._tokens:
        assert access_token not in logs
