"""The configuration file: the example passes `config check`, and every broken file stops with
exactly one line naming the key and the file (exit code 2), without printing a secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskplanner.cli import app
from taskplanner.config import (
    Config,
    ConfigError,
    GoogleCalendarConfig,
    GreenhouseConfig,
    MicrosoftCalendarConfig,
    OrganisationConfig,
    format_duration,
    load_config,
    parse_duration,
    resolve_config_path,
)
from taskplanner.providers import ATS_TYPES, PROVIDERS, available_types

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"

# Recognisable secret values: none of them may ever show up in output or errors.
EXAMPLE_ENV = {
    "TASKPLANNER_API_TOKENS": "tok-SECRET-1111,tok-SECRET-2222",
    "GREENHOUSE_CLIENT_ID": "gh-id-SECRET-3333",
    "GREENHOUSE_CLIENT_SECRET": "gh-secret-SECRET-4444",
    "GREENHOUSE_WEBHOOK_SECRET": "gh-hook-SECRET-5555",
    "M365_CLIENT_ID": "m365-id-SECRET-6666",
    "M365_CLIENT_SECRET": "m365-secret-SECRET-7777",
    "TASKPLANNER_SMTP_URL": "smtp://mailer:pw-SECRET-8888@mail.acme.example:587",
    "OIDC_CLIENT_ID": "oidc-id-SECRET-1010",
    "OIDC_CLIENT_SECRET": "oidc-secret-SECRET-1111",
    "SLACK_BOT_TOKEN": "xoxb-SECRET-1212",
}
CREDENTIALS = '{"type": "service_account", "private_key": "key-SECRET-9999"}'
SECRET_MARKER = "SECRET-"


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        assert SECRET_MARKER not in output, output


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(EXAMPLE_ENV)


@pytest.fixture
def example_config(tmp_path: Path, secret_env: dict[str, str]) -> Path:
    """The shipped example, copied next to the service-account file it references."""
    path = tmp_path / "taskplanner.toml"
    shutil.copy(EXAMPLE, path)
    (tmp_path / "google-service-account.json").write_text(CREDENTIALS)
    return path


def cli_command() -> list[str]:
    """The installed console script if there is one, else the same entry point via -c."""
    script = Path(sys.executable).with_name("taskplanner")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from taskplanner.cli import main; main()"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [*cli_command(), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


# --------------------------------------------------------------------------- the example


def test_example_config_passes_check_in_process(example_config: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", "--config", str(example_config)])

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "organisation: Acme" in result.stdout
    for connector in ("greenhouse", "google_calendar", "microsoft_calendar", "m365"):
        assert connector in result.stdout
    assert "poll every 5m" in result.stdout
    assert_no_secret(result.stdout)


def test_example_config_passes_check_as_installed_command(example_config: Path) -> None:
    result = run_cli("config", "check", "--config", str(example_config))

    assert result.returncode == 0, result.stderr
    assert "greenhouse" in result.stdout
    assert "microsoft_calendar" in result.stdout
    assert_no_secret(result.stdout, result.stderr)


def test_example_config_loads_into_typed_models(example_config: Path) -> None:
    config = load_config(example_config)

    assert config.source == str(example_config)
    assert config.organisation.account_owner == "ada@acme.example"
    assert config.organisation.zone().key == "Europe/Berlin"
    assert config.rules.inactivity_after == timedelta(days=15)
    assert config.server.api_tokens() == ["tok-SECRET-1111", "tok-SECRET-2222"]
    assert config.digest is not None
    assert config.digest.send_at == time(8, 0)
    assert config.digest.from_ == "taskplanner@acme.example"
    assert config.digest.smtp_url() == EXAMPLE_ENV["TASKPLANNER_SMTP_URL"]

    greenhouse = config.connectors["greenhouse"]
    assert isinstance(greenhouse, GreenhouseConfig)
    assert greenhouse.name == "greenhouse"
    assert greenhouse.poll_interval == timedelta(minutes=5)
    assert greenhouse.secret("client_secret") == EXAMPLE_ENV["GREENHOUSE_CLIENT_SECRET"]
    assert greenhouse.optional_secret("webhook_secret") == EXAMPLE_ENV["GREENHOUSE_WEBHOOK_SECRET"]
    assert config.ats_connector() is greenhouse

    google = config.connectors["google"]
    assert isinstance(google, GoogleCalendarConfig)
    assert google.credentials_file == example_config.parent / "google-service-account.json"
    assert google.secret("credentials") == CREDENTIALS
    m365 = config.connectors["m365"]
    assert isinstance(m365, MicrosoftCalendarConfig)
    assert m365.optional_secret("client_state") is None

    assert set(config.people_by_email()) == {"cora@acme.example", "sam@acme.example"}
    override = config.job_override("4012")
    assert override is not None
    assert override.stage_owners == {"Onsite": "sam@acme.example"}


def test_secret_values_stay_out_of_repr_and_dumps(example_config: Path) -> None:
    config = load_config(example_config)

    assert_no_secret(repr(config), str(config), config.model_dump_json())


# --------------------------------------------------------------------------- broken files

VALID = """\
[organisation]
name = "Acme"
account_owner = "ada@acme.example"
timezone = "Europe/Berlin"

[server]
port = 8080
api_tokens_env = "TASKPLANNER_API_TOKENS"

[[people]]
email = "cora@acme.example"
role = "coordinator"

[[jobs]]
ats_job_id = "4012"
stage_owners = { "Onsite" = "sam@acme.example" }

[connectors.greenhouse]
type = "greenhouse"
client_id_env = "GREENHOUSE_CLIENT_ID"
client_secret_env = "GREENHOUSE_CLIENT_SECRET"
poll_interval = "5m"

[connectors.google]
type = "google_calendar"
credentials_file = "google-service-account.json"
calendars = ["cora@acme.example"]

[digest]
send_at = "08:00"
smtp_url_env = "TASKPLANNER_SMTP_URL"
from = "taskplanner@acme.example"
"""

LEVER = """
[connectors.lever]
type = "lever"
api_key_env = "GREENHOUSE_CLIENT_ID"
"""

# (case id, text to replace in VALID, replacement, what the one error line must contain)
BROKEN: list[tuple[str, str, str, str]] = [
    (
        "unknown_key",
        'type = "greenhouse"',
        'type = "greenhouse"\ncolour = "blue"',
        "connectors.greenhouse.colour: unknown key",
    ),
    ("unknown_section", "[digest]", "[digests]\n[digest]", "digests: unknown key"),
    (
        "connector_time_zone_unknown",
        'type = "greenhouse"',
        'type = "greenhouse"\ntime_zone = "Mars/Base"',
        "connectors.greenhouse.time_zone: unknown time zone 'Mars/Base'",
    ),
    ("port_not_an_integer", "port = 8080", 'port = "abc"', "server.port: expected an integer"),
    (
        "unknown_inbox_worker",
        "[digest]",
        '[daemon]\ninbox_worker = "fork"\n[digest]',
        "daemon.inbox_worker: expected one of 'process' or 'thread', got 'fork'",
    ),
    ("port_out_of_range", "port = 8080", "port = 70000", "server.port: must be less than"),
    (
        "bad_duration",
        'poll_interval = "5m"',
        'poll_interval = "5 minutes"',
        "connectors.greenhouse.poll_interval: invalid duration",
    ),
    (
        "zero_duration",
        'poll_interval = "5m"',
        'poll_interval = "0s"',
        "connectors.greenhouse.poll_interval: duration must be greater than zero",
    ),
    (
        "missing_env_var",
        '"GREENHOUSE_CLIENT_SECRET"',
        '"GREENHOUSE_CLIENT_SECRET_UNSET"',
        "connectors.greenhouse.client_secret_env: environment variable "
        "GREENHOUSE_CLIENT_SECRET_UNSET is not set",
    ),
    (
        "empty_env_var",
        '"TASKPLANNER_SMTP_URL"',
        '"TASKPLANNER_TEST_EMPTY"',
        "digest.smtp_url_env: environment variable TASKPLANNER_TEST_EMPTY is empty",
    ),
    (
        "value_instead_of_env_var_name",
        '"GREENHOUSE_CLIENT_ID"',
        '"gh-id-SECRET-pasted here"',
        "connectors.greenhouse.client_id_env: must name an environment variable",
    ),
    (
        "missing_secret_file",
        '"google-service-account.json"',
        '"missing.json"',
        "connectors.google.credentials_file: file",
    ),
    (
        "missing_required_key",
        'client_id_env = "GREENHOUSE_CLIENT_ID"\n',
        "",
        "connectors.greenhouse.client_id_env: missing required key",
    ),
    (
        "two_ats_connectors",
        "[digest]",
        LEVER + "\n[digest]",
        "connectors.lever: only one ATS connector may be enabled",
    ),
    (
        "duplicate_connector_table",
        "[digest]",
        '[connectors.greenhouse]\ntype = "lever"\n[digest]',
        "connectors.greenhouse: table is declared twice",
    ),
    (
        "duplicate_key",
        "port = 8080",
        "port = 8080\nport = 8081",
        "server.port: TOML syntax error at line 8",
    ),
    (
        "account_owner_not_an_email",
        '"ada@acme.example"',
        '"ada at acme"',
        "organisation.account_owner: not an email address",
    ),
    (
        "bad_timezone",
        '"Europe/Berlin"',
        '"Mars/Olympus_Mons"',
        "organisation.timezone: unknown time zone",
    ),
    (
        "bad_connector_type",
        'type = "google_calendar"',
        'type = "outlook"',
        "connectors.google.type: unknown connector type 'outlook'",
    ),
    (
        "bad_connector_name",
        "[connectors.google]",
        "[connectors.Google]",
        "connectors.Google: connector name must match",
    ),
    (
        "bad_send_at",
        'send_at = "08:00"',
        'send_at = "25:00"',
        'digest.send_at: expected a time "HH:MM"',
    ),
    ("bad_role", 'role = "coordinator"', 'role = "boss"', "people[0].role: expected one of"),
    (
        "bad_stage_owner_email",
        '"sam@acme.example"',
        '"sam"',
        "jobs[0].stage_owners.Onsite: not an email address",
    ),
    (
        "missing_organisation",
        '[organisation]\nname = "Acme"\naccount_owner = "ada@acme.example"\n'
        'timezone = "Europe/Berlin"\n',
        "",
        "organisation: missing required section [organisation]",
    ),
    (
        "toml_syntax_error",
        "port = 8080",
        "port = 8080 8080",
        "server.port: TOML syntax error at line 7, column 13:",
    ),
    (
        "misspelt_connector_type",
        'type = "google_calendar"',
        'type = "google_calender"',
        "connectors.google.type: unknown connector type 'google_calender' "
        "(did you mean 'google_calendar'?); expected one of:",
    ),
    (
        "misspelt_role",
        'role = "coordinator"',
        'role = "cordinator"',
        "people[0].role: expected one of 'coordinator', 'recruiter', 'admin', 'hiring_manager' "
        "or 'interviewer', got 'cordinator' (did you mean 'coordinator'?)",
    ),
    (
        "misspelt_section",
        "[digest]",
        "[dgest]",
        "dgest: unknown key (did you mean 'digest'?)",
    ),
    (
        "unknown_key_without_a_close_match",
        "[digest]",
        '[daemon]\nthreads = 4\n[digest]',
        "daemon.threads: unknown key (expected one of: lease, shutdown_timeout, inbox_worker)",
    ),
    (
        "secret_written_into_the_file",
        'client_id_env = "GREENHOUSE_CLIENT_ID"',
        'client_id_env = "GREENHOUSE_CLIENT_ID"\nclient_secret = "gh-SECRET-pasted"',
        "connectors.greenhouse.client_secret: unknown key (secrets never go in this file: set "
        "client_secret_env to the environment variable holding it)",
    ),
    (
        "secret_in_a_secret_looking_key_is_not_echoed",
        'api_tokens_env = "TASKPLANNER_API_TOKENS"',
        "api_tokens_env = 12345",
        "server.api_tokens_env: expected a string (",
    ),
    (
        "unsupported_database",
        "[server]",
        '[database]\nurl = "mysql://tp:db-SECRET-pw@db.internal/tp"\n[server]',
        "database.url: unsupported database 'mysql': taskplanner runs on SQLite or PostgreSQL",
    ),
    (
        "database_driver_not_installed",
        "[server]",
        '[database]\nurl = "postgresql+psycopg2://tp:db-SECRET-pw@db.internal/tp"\n[server]',
        "database.url: unsupported driver 'psycopg2' for postgresql: use postgresql+psycopg://",
    ),
    (
        "database_url_not_a_url",
        "[server]",
        '[database]\nurl = "db-SECRET-taskplanner.db"\n[server]',
        "database.url: expected a database URL like",
    ),
    (
        "smtp_url_not_an_smtp_url",
        '"TASKPLANNER_SMTP_URL"',
        '"TASKPLANNER_TEST_BAD_SMTP"',
        "digest.smtp_url_env: environment variable TASKPLANNER_TEST_BAD_SMTP: not an SMTP URL",
    ),
    (
        "same_person_twice",
        "[[jobs]]",
        '[[people]]\nemail = "Cora@acme.example"\nrole = "recruiter"\n[[jobs]]',
        "people[1].email: cora@acme.example is listed twice",
    ),
]


@pytest.fixture
def broken_dir(tmp_path: Path, secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "google-service-account.json").write_text(CREDENTIALS)
    monkeypatch.setenv("TASKPLANNER_TEST_EMPTY", "")
    monkeypatch.setenv("TASKPLANNER_TEST_BAD_SMTP", "mail.acme.example:587 user SECRET-pw")
    return tmp_path


def test_valid_base_passes(broken_dir: Path) -> None:
    path = broken_dir / "ok.toml"
    path.write_text(VALID)

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_config_exits_2_with_one_line_naming_key_and_file(
    broken_dir: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    path = broken_dir / "broken.toml"
    path.write_text(VALID.replace(old, new, 1))

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), lines[0]
    assert lines[0].endswith(f"({path})")
    assert_no_secret(result.stderr)


@pytest.mark.parametrize("ats", [t for t in ATS_TYPES if not PROVIDERS[t].connector_available])
def test_an_ats_whose_connector_is_not_in_this_version_exits_2_with_one_line(
    broken_dir: Path, ats: str
) -> None:
    path = broken_dir / "future.toml"
    greenhouse = 'type = "greenhouse"\n'
    greenhouse_off = VALID.replace(greenhouse, greenhouse + "enabled = false\n")
    table = f'[connectors.ats]\ntype = "{ats}"\napi_key_env = "GREENHOUSE_CLIENT_ID"\n'
    path.write_text(greenhouse_off + table)

    result = run_cli("config", "check", "--config", str(path))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"connectors.ats.type: the {PROVIDERS[ats].display_name} connector is not available in "
        f"this version of taskplanner (available: {', '.join(available_types(ats=True))}); "
        f"set enabled = false to keep the section ({path})"
    ]


def test_a_typo_in_a_key_is_named_first_with_the_key_it_was_meant_to_be(broken_dir: Path) -> None:
    path = broken_dir / "typo.toml"
    path.write_text(VALID.replace('name = "Acme"', 'nmae = "Acme"'))

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"organisation.nmae: unknown key (did you mean 'name'?) ({path})",
        f"organisation.name: missing required key ({path})",
    ]


EVERY_PROBLEM = [
    # (text in VALID, replacement, the line it must produce without the file name)
    (
        "[digest]",
        "[digests]\n[digest]",
        "digests: unknown key (did you mean 'digest'?)",
    ),
    (
        'poll_interval = "5m"',
        'pol_interval = "5m"',
        "connectors.greenhouse.pol_interval: unknown key (did you mean 'poll_interval'?)",
    ),
    ('"Europe/Berlin"', '"Europe/Berln"', "organisation.timezone: unknown time zone"),
    ("port = 8080", 'port = "8080x"', "server.port: expected an integer, got '8080x'"),
    ('role = "coordinator"', 'role = "boss"', "people[0].role: expected one of"),
    (
        '"TASKPLANNER_SMTP_URL"',
        '"SMTP_URL_UNSET"',
        "digest.smtp_url_env: environment variable SMTP_URL_UNSET is not set",
    ),
    (
        '"google-service-account.json"',
        '"missing.json"',
        "connectors.google.credentials_file: file",
    ),
]


def test_config_check_reports_every_problem_at_once_unknown_keys_first(broken_dir: Path) -> None:
    text = VALID
    for old, new, _ in EVERY_PROBLEM:
        assert old in text
        text = text.replace(old, new, 1)
    path = broken_dir / "many.toml"
    path.write_text(text)

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(EVERY_PROBLEM), result.stderr
    assert all(line.endswith(f" ({path})") for line in lines)
    unknown = [line for line in lines if ": unknown key" in line]
    assert lines[: len(unknown)] == unknown and len(unknown) == 2
    for _, _, expected in EVERY_PROBLEM:
        assert sum(line.startswith(expected) for line in lines) == 1, (expected, lines)
    assert_no_secret(result.stderr)


def test_missing_secrets_are_reported_together_with_mistakes_elsewhere(broken_dir: Path) -> None:
    # A section that is valid on its own has its secrets checked even when another is not.
    path = broken_dir / "both.toml"
    text = VALID.replace("port = 8080", "port = -1")
    path.write_text(text.replace('"TASKPLANNER_SMTP_URL"', '"SMTP_URL_UNSET"'))

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"server.port: must be greater than or equal to 0, got -1 ({path})",
        f"digest.smtp_url_env: environment variable SMTP_URL_UNSET is not set ({path})",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("-----BEGIN KEY----- SECRET-pem", "not JSON (expected a service-account key file)"),
        (
            '{"type": "authorized_user", "refresh_token": "SECRET-t"}',
            'not a service-account key (expected JSON with "type": "service_account")',
        ),
    ],
    ids=["not_json", "not_a_service_account_key"],
)
def test_a_credentials_file_that_is_not_a_service_account_key_is_a_config_error(
    broken_dir: Path, content: str, problem: str
) -> None:
    (broken_dir / "key.json").write_text(content)
    path = broken_dir / "key.toml"
    path.write_text(VALID.replace('"google-service-account.json"', '"key.json"'))

    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"connectors.google.credentials_file: file {broken_dir / 'key.json'}: {problem} ({path})"
    ]
    assert_no_secret(result.stderr)


def test_resolve_secrets_reports_every_missing_secret(sandbox_config: Config) -> None:
    with pytest.raises(ConfigError) as error:
        sandbox_config.resolve_secrets({})

    assert [str(e) for e in error.value.errors] == str(error.value).splitlines() == [
        "connectors.greenhouse.client_id_env: environment variable SANDBOX_ID is not set "
        "(<memory>)",
        "connectors.greenhouse.client_secret_env: environment variable SANDBOX_SECRET "
        "is not set (<memory>)",
    ]


def test_the_database_password_stays_out_of_the_config_repr(broken_dir: Path) -> None:
    path = broken_dir / "pg.toml"
    url = "postgresql+psycopg://tp:db-SECRET-pw@db.internal/tp"
    path.write_text(VALID + f'\n[database]\nurl = "{url}"\n')

    config = load_config(path)

    assert config.database.url == url
    assert "tp:***@db.internal" in repr(config)
    assert_no_secret(repr(config), str(config), repr(config.database))


def test_broken_config_from_installed_command_prints_one_line(broken_dir: Path) -> None:
    path = broken_dir / "broken.toml"
    path.write_text(VALID.replace("port = 8080", 'port = "abc"'))

    result = run_cli("config", "check", "--config", str(path))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"server.port: expected an integer, got 'abc' ({path})"]


def test_missing_config_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)
    missing = tmp_path / "nowhere.toml"

    result = CliRunner().invoke(app, ["config", "check", "--config", str(missing)])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"--config: file not found (pass --config PATH or set TASKPLANNER_CONFIG) ({missing})"
    ]


def test_config_error_is_one_line() -> None:
    error = ConfigError("server.port", "bad\nvalue", "x.toml")

    assert str(error) == "server.port: bad value (x.toml)"


# --------------------------------------------------------------------------- file resolution


def test_config_path_precedence(tmp_path: Path) -> None:
    env = {"TASKPLANNER_CONFIG": str(tmp_path / "env.toml")}

    assert resolve_config_path("flag.toml", env) == Path("flag.toml")
    assert resolve_config_path(None, env) == tmp_path / "env.toml"
    assert resolve_config_path(None, {}) == Path("taskplanner.toml")


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text('[organisation]\nname = "Acme"\naccount_owner = "ada@acme.example"\n')

    config = load_config(environ={"TASKPLANNER_CONFIG": str(path)})

    assert config.source == str(path)
    assert config.organisation.timezone == "UTC"
    assert config.database.url == "sqlite:///taskplanner.db"
    assert config.connectors == {}


def test_disabled_connector_needs_no_secrets_and_is_not_an_ats(broken_dir: Path) -> None:
    path = broken_dir / "disabled.toml"
    disabled_lever = LEVER.replace('"GREENHOUSE_CLIENT_ID"', '"UNSET_KEY"') + "enabled = false\n"
    path.write_text(VALID + disabled_lever)

    config = load_config(path)

    assert config.connectors["lever"].enabled is False
    assert set(config.enabled_connectors()) == {"greenhouse", "google"}


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("3d", timedelta(days=3)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_parse_duration_accepts_unit_suffixes(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "1.5h", "-3d", "3w", "m5", "30m1h", "PT5M"])
def test_parse_duration_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["90s", "15m", "24h", "36h", "3d", "15d", "1h30m", "2d1h1m1s"])
def test_format_duration_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


# --------------------------------------------------------------------------- built in Python


@pytest.fixture
def sandbox_config() -> Iterator[Config]:
    yield Config.model_validate(
        {
            "organisation": {"name": "Sandbox", "account_owner": "Owner@Sandbox.example"},
            "jobs": [{"ats_job_id": 7, "inactivity_after": {"Onsite": "2d"}}],
            "connectors": {
                "greenhouse": {
                    "type": "greenhouse",
                    "base_url": "http://127.0.0.1:9999",
                    "client_id_env": "SANDBOX_ID",
                    "client_secret_env": "SANDBOX_SECRET",
                }
            },
        }
    )


def test_config_built_in_python_takes_secrets_directly(sandbox_config: Config) -> None:
    connector = sandbox_config.connectors["greenhouse"]
    assert sandbox_config.source == "<memory>"
    assert sandbox_config.organisation.account_owner == "owner@sandbox.example"

    with pytest.raises(KeyError, match="not been resolved"):
        connector.secret("client_secret")
    sandbox_config.resolve_secrets({"SANDBOX_ID": "id", "SANDBOX_SECRET": "shh"})

    assert connector.secret("client_secret") == "shh"
    assert connector.optional_secret("webhook_secret") is None
    with pytest.raises(KeyError, match="not configured"):
        connector.secret("webhook_secret")


def test_resolve_secrets_reports_the_key_of_a_python_config(sandbox_config: Config) -> None:
    with pytest.raises(ConfigError) as error:
        sandbox_config.resolve_secrets({"SANDBOX_ID": "id"})

    assert str(error.value) == (
        "connectors.greenhouse.client_secret_env: environment variable SANDBOX_SECRET "
        "is not set (<memory>)"
    )


def test_stage_inactivity_prefers_job_override_then_default_stages(sandbox_config: Config) -> None:
    default = sandbox_config.rules.inactivity_after

    assert sandbox_config.stage_inactivity("7", "Onsite") == timedelta(days=2)
    assert sandbox_config.stage_inactivity("7", "onsite") == timedelta(days=2)
    assert sandbox_config.stage_inactivity("7", "Application Review") == default
    assert sandbox_config.stage_inactivity("8", "Sourced") == default
    assert sandbox_config.stage_inactivity("8", "Onsite") is None
    assert sandbox_config.job_override("7") is not None
    assert sandbox_config.job_override("8") is None


def test_organisation_rejects_unknown_timezone_in_python() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        OrganisationConfig(name="Acme", account_owner="ada@acme.example", timezone="Nowhere/City")
