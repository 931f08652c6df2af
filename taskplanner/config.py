"""The organisation's TOML configuration, validated into typed, immutable-by-convention models.

Every problem (unknown key, bad value, missing secret) becomes one `ConfigError` line that
names the dotted key and the file; a file is checked whole, so `taskplanner config check` and
start-up report all of its problems at once (unknown keys first, with "did you mean").
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from taskplanner import providers
from taskplanner.domain.alerting import DEFAULT_CATEGORIES, DEFAULT_DECLINE_WITHIN
from taskplanner.domain.assignment import (
    Post,
    allowed_roles_text,
    handover_cycle,
    may_hold,
    role_text,
)
from taskplanner.domain.categories import CATEGORY_BY_NAME

__all__ = [
    "ATS_CONNECTOR_TYPES",
    "CALENDAR_CONNECTOR_TYPES",
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "AshbyConfig",
    "Config",
    "ConfigCheck",
    "ConfigError",
    "ConnectorConfig",
    "DaemonConfig",
    "DatabaseConfig",
    "DigestConfig",
    "Duration",
    "EmailAlertsConfig",
    "Email",
    "GoogleCalendarConfig",
    "GreenhouseConfig",
    "JobOverride",
    "LeverConfig",
    "MicrosoftCalendarConfig",
    "NotificationsConfig",
    "OidcConfig",
    "OrganisationConfig",
    "PersonConfig",
    "Role",
    "RulesConfig",
    "ServerConfig",
    "SlackAlertsConfig",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "resolve_config_path",
]

CONFIG_ENV_VAR = "TASKPLANNER_CONFIG"
DEFAULT_CONFIG_FILE = "taskplanner.toml"
MEMORY_SOURCE = "<memory>"

ATS_CONNECTOR_TYPES: frozenset[str] = frozenset(providers.ATS_TYPES)
CALENDAR_CONNECTOR_TYPES: frozenset[str] = frozenset(providers.CALENDAR_TYPES)

# Backend -> the driver taskplanner installs for it ("postgresql://" means psycopg 3).
_DATABASE_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "postgres": "psycopg"}
_CONNECTOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Deliberately simple: catches typos like a missing "@" without pulling in email-validator.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_HH_MM = re.compile(r"^(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)$")
_TOML_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(Exception):
    """A configuration problem, rendered as one line: ``<dotted.key>: <problem> (<file>)``.

    One error may carry every problem found in a file (`collect`): ``errors`` lists them
    and ``str()`` is one line each, the first being this error's own key and problem.
    """

    def __init__(self, key: str, problem: str, source: str = MEMORY_SOURCE) -> None:
        self.key = key
        self.problem = " ".join(problem.split())
        self.source = source
        self.errors: list[ConfigError] = [self]
        super().__init__(f"{self.key}: {self.problem} ({self.source})")

    @classmethod
    def collect(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error reporting all of ``errors`` (in order, repeated lines dropped)."""
        unique = list({str(error): error for error in errors}.values())
        if len(unique) == 1:
            return unique[0]
        first = unique[0]
        combined = cls(first.key, first.problem, first.source)
        combined.errors = unique
        combined.args = ("\n".join(str(error) for error in unique),)
        return combined


# A check of a validated configuration by a layer above this module (e.g. "is a connector
# built for this type", which only the runtime knows); its problems join the file's others.
ConfigCheck = Callable[["Config"], Iterable[ConfigError]]


class _KeyedValueError(ValueError):
    """A validator's error that points below the field it was raised for.

    Pydantic keeps the raised exception in the error's ``ctx``; `_explain` appends `subkey`
    to the location so e.g. a bad connector name is reported as ``connectors.<name>``.
    """

    def __init__(self, subkey: tuple[str | int, ...], problem: str) -> None:
        self.subkey = subkey
        self.problem = problem
        super().__init__(f"{_dotted(subkey)}: {problem}" if subkey else problem)


class _KeyedValueErrors(ValueError):
    """Several `_KeyedValueError`s from one validator, each reported on its own line."""

    def __init__(self, errors: Sequence[_KeyedValueError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


def _raise_all(errors: Sequence[_KeyedValueError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise _KeyedValueErrors(errors)


# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"24h"``, ``"3d"`` or combinations like ``"1h30m"``."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit d, h, m or s "
            f'(e.g. "90s", "15m", "24h", "3d", "1h30m")'
        )
    parts = {unit: int(value or 0) for unit, value in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def format_duration(value: timedelta) -> str:
    """Render a duration the way the config file spells it (inverse of `parse_duration`)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    out = []
    # "24h" and "36h" read better than "1d" and "1d12h"; days from 48 hours on.
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for unit, size in units if seconds >= 2 * 86400 else units[1:]:
        amount, seconds = divmod(seconds, size)
        if amount:
            out.append(f"{amount}{unit}")
    return sign + "".join(out)


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str):
        duration = parse_duration(value)
    else:
        raise ValueError(f'expected a duration string like "15m", got {_show(value)}')
    if duration <= timedelta(0):
        raise ValueError("duration must be greater than zero")
    return duration


def _to_time(value: object) -> time:
    # TOML has a native local-time type (08:00:00) which tomllib returns as datetime.time.
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (match := _HH_MM.fullmatch(value.strip())):
        return time(int(match["h"]), int(match["m"]))
    raise ValueError(f'expected a time "HH:MM" (24-hour), got {_show(value)}')


def _breach(email: str, roles: Mapping[str, str], post: Post) -> str:
    role = roles[email]
    return (
        f"{email} is {role_text(role)} in [[people]]; a {post} must be "
        f"{allowed_roles_text(post)}"
    )


def email_address(value: str) -> str:
    """A valid address, lower-cased (as everywhere in taskplanner); ValueError otherwise."""
    return _check_email(value)


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"not an email address: {value!r}")
    # Providers differ in case (Google lower-cases, Greenhouse keeps what was typed).
    return value.lower()


def _check_env_var_name(value: str | None) -> str | None:
    # Refuse to echo the value: a secret pasted here by mistake must not reach the logs.
    if value is not None and not _ENV_VAR_NAME.fullmatch(value):
        raise ValueError("must name an environment variable (letters, digits and _), not a value")
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
Email = Annotated[str, AfterValidator(_check_email)]
EnvVarName = Annotated[str, AfterValidator(_check_env_var_name)]
OptionalEnvVarName = Annotated[str | None, AfterValidator(_check_env_var_name)]
Role = Literal["coordinator", "recruiter", "admin", "hiring_manager", "interviewer"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- secrets


class _SecretHolder(_Model):
    """A section whose ``*_env`` / ``*_file`` keys name secrets resolved at load time.

    Values are kept as `SecretStr` in a private attribute, so they never appear in
    ``repr()``, ``model_dump()`` or error messages; ``secret("client_secret")`` returns
    the value behind ``client_secret_env``, ``secret("credentials")`` the contents of
    ``credentials_file``.
    """

    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def secret_keys(self) -> Iterator[tuple[str, str]]:
        """Yield ``(secret name, config key)`` for every configured ``*_env``/``*_file`` key."""
        for key in type(self).model_fields:
            if key.endswith(("_env", "_file")) and getattr(self, key) is not None:
                yield key.rsplit("_", 1)[0], key

    def secret(self, name: str) -> str:
        """The resolved value of secret `name`; `KeyError` if it is not configured."""
        value = self.optional_secret(name)
        if value is None:
            raise KeyError(f"secret {name!r} is not configured (no {name}_env / {name}_file key)")
        return value

    def optional_secret(self, name: str) -> str | None:
        """The resolved value of secret `name`, or None when its key is not set."""
        if name in self._secrets:
            return self._secrets[name].get_secret_value()
        if not any(secret == name for secret, _ in self.secret_keys()):
            return None
        raise KeyError(f"secret {name!r} has not been resolved: call Config.resolve_secrets()")

    def set_secret(self, name: str, value: str) -> None:
        """Provide a secret directly (for configurations built in Python, e.g. the sandbox)."""
        self._secrets[name] = SecretStr(value)

    def _resolve(
        self, key: str, environ: Mapping[str, str], base_dir: Path, source: str
    ) -> list[ConfigError]:
        """Read this section's secrets; one problem for each that cannot be read."""
        problems: list[ConfigError] = []
        for name, field in self.secret_keys():
            try:
                value = self._read_secret(field, environ, base_dir, f"{key}.{field}", source)
            except ConfigError as problem:
                problems.append(problem)
            else:
                self._secrets[name] = SecretStr(value)
        return problems

    def _read_secret(
        self, field: str, environ: Mapping[str, str], base_dir: Path, key: str, source: str
    ) -> str:
        reference = getattr(self, field)
        if field.endswith("_env"):
            value = environ.get(reference)
            if value is None or not value.strip():
                state = "is not set" if value is None else "is empty"
                raise ConfigError(key, f"environment variable {reference} {state}", source)
            where = f"environment variable {reference}"
        else:
            path = Path(reference).expanduser()
            if not path.is_absolute():
                path = base_dir / path
            value = _read_secret_file(path, key, source)
            setattr(self, field, path)
            where = f"file {path}"
        problem = self._secret_shape_problem(field.rsplit("_", 1)[0], value)
        if problem is not None:
            # Only what is wrong with the value and where it came from, never the value.
            raise ConfigError(key, f"{where}: {problem}", source)
        return value

    def _secret_shape_problem(self, name: str, value: str) -> str | None:
        """What is wrong with a secret's value (None: nothing); never repeats the value."""
        return None


def _read_secret_file(path: Path, key: str, source: str) -> str:
    if not path.exists():
        raise ConfigError(key, f"file {path} does not exist", source)
    if not path.is_file():
        raise ConfigError(key, f"{path} is not a file", source)
    try:
        return path.read_text(encoding="utf-8")
    except PermissionError:
        raise ConfigError(key, f"file {path} is not readable (permission denied)", source) from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"file {path} is not UTF-8 text", source) from None
    except OSError as exc:
        raise ConfigError(key, f"file {path} cannot be read ({exc.strerror})", source) from None


# --------------------------------------------------------------------------- sections


class OrganisationConfig(_Model):
    name: str = Field(min_length=1)
    account_owner: Email
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f'unknown time zone {value!r} (use an IANA name like "Europe/Berlin")'
            ) from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DatabaseConfig(_Model):
    url: str = "sqlite:///taskplanner.db"

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str) -> str:
        # The URL may carry a password: the problems below never repeat it.
        example = '"sqlite:///taskplanner.db" or "postgresql+psycopg://user@host/db"'
        try:
            drivername = make_url(value).drivername if "://" in value else ""
        except (ArgumentError, ValueError):
            drivername = ""
        if not drivername:
            raise ValueError(f"expected a database URL like {example}")
        backend, _, driver = drivername.partition("+")
        if backend not in _DATABASE_DRIVERS:
            raise ValueError(
                f"unsupported database {backend!r}: taskplanner runs on SQLite or PostgreSQL "
                f"({example})"
            )
        if driver and driver != _DATABASE_DRIVERS[backend]:
            raise ValueError(
                f"unsupported driver {driver!r} for {backend}: use "
                f"{backend}+{_DATABASE_DRIVERS[backend]}:// (or {backend}://)"
            )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "url", _hide_url_password(self.url)


_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+$")


def _check_issuer(value: str) -> str:
    # OpenID Connect Discovery §3: the issuer is an https URL without query or fragment;
    # plain http only for a provider on this machine (tests, a local development IdP).
    value = value.strip()
    local = value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if not (value.startswith("https://") or local) or "?" in value or "#" in value:
        raise ValueError(
            f"expected the identity provider's https URL (e.g. "
            f'"https://accounts.google.com"), got {_show(value)}'
        )
    return value


def _check_domain(value: str) -> str:
    value = value.strip().lower()
    if not _DOMAIN.fullmatch(value):
        raise ValueError(f'expected a domain name like "acme.example", got {_show(value)}')
    return value


class OidcConfig(_SecretHolder):
    """``[server.oidc]``: sign-in through the organisation's identity provider."""

    issuer: Annotated[str, AfterValidator(_check_issuer)]
    client_id_env: EnvVarName
    client_secret_env: EnvVarName
    # Only people whose address is in one of these domains may sign in.
    allowed_domains: list[Annotated[str, AfterValidator(_check_domain)]] = Field(min_length=1)


class ServerConfig(_SecretHolder):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Comma-separated bearer tokens; without any, the API only answers loopback clients.
    api_tokens_env: OptionalEnvVarName = None
    # Header set by a signing-in reverse proxy (e.g. "X-Forwarded-Email") naming the user.
    trusted_user_header: str | None = None
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # Where users reach the page (links in the digest); defaults to http://host:port.
    public_url: str | None = None
    oidc: OidcConfig | None = None
    # Page sessions end this long after sign-in (and at sign-out).
    session_lifetime: Duration = timedelta(hours=12)

    def listens_everywhere(self) -> bool:
        """A wildcard address: the server's own host:port is no address to link to."""
        return self.host.strip("[]") in ("0.0.0.0", "::", "")  # noqa: S104 - compared only

    def link(self, path: str) -> str:
        """An absolute link to one of this server's pages: public_url, else host:port."""
        base = self.public_url or f"http://{self.host}:{self.port}/"
        return base.rstrip("/") + "/" + path.lstrip("/")
    # Key that signs session cookies; without one, a key is generated and kept in the
    # database so every replica shares it.
    session_key_env: OptionalEnvVarName = None
    session_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_session_key(self) -> ServerConfig:
        if self.session_key_env is not None and self.session_key_file is not None:
            raise _KeyedValueError(("session_key_file",), "set session_key_env or this, not both")
        return self

    def api_tokens(self) -> list[str]:
        raw = self.optional_secret("api_tokens")
        return [token.strip() for token in (raw or "").split(",") if token.strip()]


class RulesConfig(_Model):
    # A ready_to_schedule task is due this long after it opens (urgency order, overdue marks).
    schedule_within: Duration = timedelta(days=2)
    evaluation_due_after: Duration = timedelta(hours=24)
    job_live_within: Duration = timedelta(hours=24)
    inactivity_after: Duration = timedelta(days=15)
    scheduling_stages: list[str] = Field(
        default_factory=lambda: ["Phone Screen", "Technical Interview", "Onsite"]
    )
    # Stages whose inactivity alerts are on by default (sourcing and in-conversation stages).
    inactivity_stages: list[str] = Field(
        default_factory=lambda: ["Application Review", "Sourced", "In Conversation"]
    )
    integration_failure_threshold: int = Field(default=3, ge=1)
    inbox_max_attempts: int = Field(default=8, ge=1)
    # An out-of-office event on a person's synced calendar hands their tasks over for its span.
    follow_out_of_office: bool = False


def _to_day_or_instant(value: object) -> date | datetime:
    """``away_until``: a TOML date or "YYYY-MM-DD" (the day they are back), or an instant
    with its offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a date and time needs its offset (e.g. 2027-01-04T09:00:00+01:00)")
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return _to_day_or_instant(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise ValueError(f'expected a date like "2027-01-04", got {_show(value)}')


DayOrInstant = Annotated[date | datetime, BeforeValidator(_to_day_or_instant)]


class PersonConfig(_Model):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    email: Email
    name: str | None = None
    role: Role
    ats_user_id: str | None = None
    # Hand-over: while it holds, every task that would go to this person goes to handover_to
    # (SPEC §3). away_until: the day they are back (absent: for good, e.g. they left).
    handover_to: Email | None = None
    away_until: DayOrInstant | None = None


class JobOverride(_Model):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    ats_job_id: str = Field(min_length=1)
    coordinator: Email | None = None
    stage_owners: dict[str, Email] = Field(default_factory=dict)
    inactivity_after: dict[str, Duration] = Field(default_factory=dict)


class DaemonConfig(_Model):
    # How long a replica's claim on a sync source or inbox delivery outlives its last
    # heartbeat: a replica that dies is taken over this long afterwards.
    lease: Duration = timedelta(seconds=30)
    # SIGTERM/SIGINT: how long to wait for the current sync page or delivery to finish.
    shutdown_timeout: Duration = timedelta(seconds=20)
    # Where webhook deliveries are processed: "process" (a worker process beside the web
    # server, so acknowledging and processing use two cores) or "thread" (one process).
    inbox_worker: Literal["process", "thread"] = "process"


class DigestConfig(_SecretHolder):
    send_at: Annotated[time, BeforeValidator(_to_time)] = time(8, 0)
    smtp_url_env: EnvVarName
    from_: Email = Field(alias="from")
    page_url: str | None = None

    def smtp_url(self) -> str:
        return self.secret("smtp_url")

    def _secret_shape_problem(self, name: str, value: str) -> str | None:
        if name != "smtp_url":
            return None
        try:
            parts = urlsplit(value.strip())
            scheme, host = parts.scheme.lower(), parts.hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in ("smtp", "smtps") or not host:
            return "not an SMTP URL (expected smtp://user:pass@host:587 or smtps://host:465)"
        return None


# --------------------------------------------------------------------------- alerts


def _check_categories(value: list[str]) -> list[str]:
    errors = [
        _KeyedValueError(
            (index,),
            f"unknown task category {name!r}{_did_you_mean(name, CATEGORY_BY_NAME)}; "
            f"expected one of: {', '.join(CATEGORY_BY_NAME)}",
        )
        for index, name in enumerate(value)
        if name not in CATEGORY_BY_NAME
    ]
    _raise_all(errors)
    return list(dict.fromkeys(value))


def _check_slack_api_url(value: str) -> str:
    value = value.strip()
    local = value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    if not (value.startswith("https://") or local) or "?" in value or "#" in value:
        raise ValueError(
            f'expected the Slack Web API\'s https URL (e.g. "https://slack.com/api/"), '
            f"got {_show(value)}"
        )
    # slack_sdk joins the method name onto it: "…/api" would lose the "api" part.
    return value if value.endswith("/") else value + "/"


AlertCategories = Annotated[list[str], AfterValidator(_check_categories)]


class SlackAlertsConfig(_SecretHolder):
    """``[notifications.slack]``: a direct message to the assignee when such a task opens."""

    bot_token_env: EnvVarName
    base_url: Annotated[str, AfterValidator(_check_slack_api_url)] = "https://slack.com/api/"
    categories: AlertCategories = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    # Declines alert only when the interview starts within this (later ones can wait).
    decline_within: Duration = DEFAULT_DECLINE_WITHIN
    # Where to post when the assignee has no Slack account under their address.
    channel: str | None = Field(default=None, min_length=1)

    def bot_token(self) -> str:
        return self.secret("bot_token")

    def _secret_shape_problem(self, name: str, value: str) -> str | None:
        # https://docs.slack.dev/authentication/tokens: bot tokens begin with "xoxb-".
        if name == "bot_token" and not value.strip().startswith("xox"):
            return "not a Slack token (a bot token begins with xoxb-)"
        return None


class EmailAlertsConfig(_Model):
    """``[notifications.email]``: an email to the assignee at once when such a task opens,
    through the ``[digest]`` section's mail settings."""

    categories: AlertCategories = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    decline_within: Duration = DEFAULT_DECLINE_WITHIN


class NotificationsConfig(_Model):
    slack: SlackAlertsConfig | None = None
    email: EmailAlertsConfig | None = None


# --------------------------------------------------------------------------- connectors


class _ConnectorBase(_SecretHolder):
    is_ats: ClassVar[bool] = False
    enabled: bool = True
    poll_interval: Duration = timedelta(minutes=5)
    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """The connector's key under ``[connectors]`` (webhook path, logs, task references)."""
        return self._name


class GreenhouseConfig(_ConnectorBase):
    is_ats: ClassVar[bool] = True
    type: Literal["greenhouse"]
    base_url: str = "https://harvest.greenhouse.io"
    auth_url: str = "https://auth.greenhouse.io"
    client_id_env: EnvVarName
    client_secret_env: EnvVarName
    webhook_secret_env: OptionalEnvVarName = None
    # The Harvest OAuth `sub`: the Greenhouse user the API acts as.
    user_id: str | None = None
    # Host of the links to candidates and jobs (EU accounts: https://app.eu.greenhouse.io).
    app_url: str = "https://app.greenhouse.io"
    # The account's time zone (IANA): the days of all-day interviews are days there.
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return OrganisationConfig._known_timezone(value)


class LeverConfig(_ConnectorBase):
    is_ats: ClassVar[bool] = True
    type: Literal["lever"]
    base_url: str = "https://api.lever.co/v1"
    api_key_env: EnvVarName
    # The webhooks' signature tokens (Lever makes one per event), separated by spaces or commas.
    webhook_secret_env: OptionalEnvVarName = None
    # Host of the links to candidates and postings (EU accounts: https://hire.eu.lever.co).
    app_url: str = "https://hire.lever.co"
    # Requests per second this connector allows itself: Lever's documented steady rate per API
    # key is 10; lower it when other integrations share the key.
    requests_per_second: float = Field(default=10.0, gt=0)


class AshbyConfig(_ConnectorBase):
    is_ats: ClassVar[bool] = True
    type: Literal["ashby"]
    base_url: str = "https://api.ashbyhq.com"
    api_key_env: EnvVarName
    webhook_secret_env: OptionalEnvVarName = None
    # Host of the links to candidates and jobs in Ashby's web app.
    app_url: str = "https://app.ashbyhq.com"


class GoogleCalendarConfig(_ConnectorBase):
    type: Literal["google_calendar"]
    # Service-account JSON key with domain-wide delegation; relative to the config file.
    credentials_file: Path
    calendars: list[str]
    poll_interval: Duration = timedelta(minutes=2)
    base_url: str | None = None
    token_url: str | None = None
    # Room calendars cannot be impersonated; they are read as this Workspace user (default:
    # the first user calendar listed).
    admin_email: Email | None = None

    def _secret_shape_problem(self, name: str, value: str) -> str | None:
        # Checked again by the connector; here so `config check` catches a wrong file early.
        try:
            key = json.loads(value)
        except ValueError:
            return "not JSON (expected a service-account key file)"
        if not isinstance(key, dict) or key.get("type") != "service_account":
            return 'not a service-account key (expected JSON with "type": "service_account")'
        return None


class MicrosoftCalendarConfig(_ConnectorBase):
    type: Literal["microsoft_calendar"]
    tenant_id: str = Field(min_length=1)
    client_id_env: EnvVarName
    client_secret_env: EnvVarName
    calendars: list[str]
    poll_interval: Duration = timedelta(minutes=2)
    base_url: str = "https://graph.microsoft.com/v1.0"
    authority_url: str = "https://login.microsoftonline.com"
    # Graph change-notification clientState, compared on every notification.
    client_state_env: OptionalEnvVarName = None
    # Extra CA bundle to trust for Graph and the authority (a TLS-intercepting proxy).
    ca_file: Path | None = None
    # The mailboxes' time zone (IANA): Graph shows an all-day event's day as midnight "UTC"
    # and names its zone the Windows way, so its day is placed in this zone.
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        return OrganisationConfig._known_timezone(value)


ConnectorConfig = Annotated[
    GreenhouseConfig | LeverConfig | AshbyConfig | GoogleCalendarConfig | MicrosoftCalendarConfig,
    Field(discriminator="type"),
]
_CONNECTOR_TYPES = tuple(providers.PROVIDERS)


# --------------------------------------------------------------------------- the whole file


class Config(_Model):
    organisation: OrganisationConfig
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    people: list[PersonConfig] = Field(default_factory=list)
    jobs: list[JobOverride] = Field(default_factory=list)
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    digest: DigestConfig | None = None
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    # Where this configuration came from; error messages name it.
    source: str = MEMORY_SOURCE

    @field_validator("connectors")
    @classmethod
    def _valid_connector_names(
        cls, connectors: dict[str, ConnectorConfig]
    ) -> dict[str, ConnectorConfig]:
        errors: list[_KeyedValueError] = []
        ats_names: list[str] = []
        for name, connector in connectors.items():
            if not _CONNECTOR_NAME.fullmatch(name):
                errors.append(
                    _KeyedValueError(
                        (name,),
                        "connector name must match ^[a-z0-9][a-z0-9_-]*$ "
                        "(lower-case letters, digits, _ and -)",
                    )
                )
            if connector.is_ats and connector.enabled:
                ats_names.append(name)
        errors += [
            _KeyedValueError(
                (name,),
                f"only one ATS connector may be enabled, connectors.{ats_names[0]} is one already",
            )
            for name in ats_names[1:]
        ]
        _raise_all(errors)
        return connectors

    @field_validator("people")
    @classmethod
    def _unique_people(cls, people: list[PersonConfig]) -> list[PersonConfig]:
        seen: set[str] = set()
        errors: list[_KeyedValueError] = []
        for index, person in enumerate(people):
            if person.email in seen:
                errors.append(_KeyedValueError((index, "email"), f"{person.email} is listed twice"))
            seen.add(person.email)
        _raise_all(errors)
        return people

    @field_validator("jobs")
    @classmethod
    def _unique_jobs(cls, jobs: list[JobOverride]) -> list[JobOverride]:
        seen: set[str] = set()
        errors: list[_KeyedValueError] = []
        for index, job in enumerate(jobs):
            if job.ats_job_id in seen:
                errors.append(
                    _KeyedValueError((index, "ats_job_id"), f"job {job.ats_job_id} is listed twice")
                )
            seen.add(job.ats_job_id)
        _raise_all(errors)
        return jobs

    @model_validator(mode="after")
    def _roles_and_hand_overs(self) -> Config:
        """The roles' rules where [[people]] knows the role, and hand-overs without cycles."""
        roles = {p.email: p.role for p in self.people}
        errors: list[_KeyedValueError] = []
        for index, job in enumerate(self.jobs):
            checks: list[tuple[tuple[str | int, ...], str | None, Post]] = [
                (("coordinator",), job.coordinator, Post.JOB_COORDINATOR)
            ]
            checks += [
                (("stage_owners", stage), owner, Post.STAGE_OWNER)
                for stage, owner in job.stage_owners.items()
            ]
            errors += [
                _KeyedValueError(("jobs", index, *subkey), _breach(email, roles, post))
                for subkey, email, post in checks
                if email is not None and not may_hold(post, roles.get(email))
            ]
        stand_ins = {p.email: p.handover_to for p in self.people}
        for index, person in enumerate(self.people):
            if person.handover_to is None:
                continue
            cycle = handover_cycle(stand_ins, person.email)
            if cycle is not None:
                errors.append(_KeyedValueError(
                    ("people", index, "handover_to"),
                    f"hand-over cycle {' → '.join(cycle)}: someone must keep the tasks",
                ))
        _raise_all(errors)
        return self

    @model_validator(mode="after")
    def _email_alerts_need_mail_settings(self) -> Config:
        if self.notifications.email is not None and self.digest is None:
            raise _KeyedValueError(
                ("notifications", "email"),
                "sends through the mail settings of [digest] (smtp_url_env, from): "
                "add a [digest] section",
            )
        return self

    @model_validator(mode="after")
    def _name_connectors(self) -> Config:
        # Connectors built in Python and assigned later still learn their name.
        for name, connector in self.connectors.items():
            connector._name = name
        return self

    # ---- queries

    def people_by_email(self) -> dict[str, PersonConfig]:
        return {person.email: person for person in self.people}

    def job_override(self, ats_job_id: str) -> JobOverride | None:
        for job in self.jobs:
            if job.ats_job_id == str(ats_job_id):
                return job
        return None

    def stage_inactivity(self, ats_job_id: str, stage_name: str) -> timedelta | None:
        """How long an application may sit in a stage before `inactive_candidate` opens.

        A per-job override wins; otherwise stages listed in ``rules.inactivity_stages`` use
        ``rules.inactivity_after``; other stages have no inactivity alert (None).
        Stage names compare case-insensitively.
        """
        wanted = stage_name.casefold()
        override = self.job_override(ats_job_id)
        if override is not None:
            for name, duration in override.inactivity_after.items():
                if name.casefold() == wanted:
                    return duration
        if any(name.casefold() == wanted for name in self.rules.inactivity_stages):
            return self.rules.inactivity_after
        return None

    def enabled_connectors(self) -> dict[str, ConnectorConfig]:
        return {name: c for name, c in self.connectors.items() if c.enabled}

    def ats_connector(self) -> GreenhouseConfig | LeverConfig | AshbyConfig | None:
        for connector in self.connectors.values():
            if (
                isinstance(connector, GreenhouseConfig | LeverConfig | AshbyConfig)
                and connector.enabled
            ):
                return connector
        return None

    @property
    def base_dir(self) -> Path:
        """Directory that relative ``*_file`` paths are resolved against."""
        return _base_dir(self.source)

    def resolve_secrets(self, environ: Mapping[str, str] | None = None) -> None:
        """Read every ``*_env`` variable and ``*_file`` file; `ConfigError` lists every gap.

        Disabled connectors are skipped so an admin can keep a block without its secrets.
        """
        problems = self.secret_problems(environ)
        if problems:
            raise ConfigError.collect(problems)

    def secret_problems(self, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
        """Resolve the secrets that can be read; one `ConfigError` for each that cannot."""
        env = os.environ if environ is None else environ
        sections: list[tuple[str, _SecretHolder]] = [("server", self.server)]
        if self.server.oidc is not None:
            sections.append(("server.oidc", self.server.oidc))
        if self.digest is not None:
            sections.append(("digest", self.digest))
        if self.notifications.slack is not None:
            sections.append(("notifications.slack", self.notifications.slack))
        sections += [
            (f"connectors.{_toml_key(name)}", connector)
            for name, connector in self.connectors.items()
            if connector.enabled
        ]
        problems: list[ConfigError] = []
        for key, section in sections:
            problems += section._resolve(key, env, self.base_dir, self.source)
        return problems


def _base_dir(source: str) -> Path:
    return Path.cwd() if source == MEMORY_SOURCE else Path(source).parent


# --------------------------------------------------------------------------- loading


def resolve_config_path(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``--config PATH``, else ``$TASKPLANNER_CONFIG``, else ``./taskplanner.toml``."""
    env = os.environ if environ is None else environ
    if path is not None and str(path):
        return Path(path)
    if env.get(CONFIG_ENV_VAR):
        return Path(env[CONFIG_ENV_VAR])
    return Path(DEFAULT_CONFIG_FILE)


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    checks: Sequence[ConfigCheck] = (),
) -> Config:
    """Read, validate and resolve the secrets of the configuration file.

    Raises `ConfigError` naming every problem in the file (one line each, key and file);
    ``checks`` add problems that only the caller can see (see `parse_config`).
    """
    env = os.environ if environ is None else environ
    file = resolve_config_path(path, env)
    source = str(file)
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        how = "--config" if path else (CONFIG_ENV_VAR if env.get(CONFIG_ENV_VAR) else "config")
        raise ConfigError(
            how, "file not found (pass --config PATH or set TASKPLANNER_CONFIG)", source
        ) from None
    except IsADirectoryError:
        raise ConfigError("config", "is a directory, not a TOML file", source) from None
    except PermissionError:
        raise ConfigError("config", "file is not readable (permission denied)", source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"file is not UTF-8 text (byte {exc.start})", source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, source) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays or inline tables.
        raise ConfigError(
            "config", "TOML nested too deeply (arrays or inline tables inside each other)", source
        ) from None
    return parse_config(data, source=source, environ=env, checks=checks)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = MEMORY_SOURCE,
    environ: Mapping[str, str] | None = None,
    checks: Sequence[ConfigCheck] = (),
) -> Config:
    """Validate already-parsed TOML data and resolve secrets.

    Raises one `ConfigError` listing every problem: unknown keys first, then bad values,
    then secrets that cannot be read, then what ``checks`` find in a valid configuration.
    """
    env = os.environ if environ is None else environ
    problems: list[ConfigError] = []
    if "source" in data:  # our own field, not one an admin may set
        problems.append(
            ConfigError("source", "unknown key" + _unknown_key_hint(("source",)), source)
        )
        data = {key: value for key, value in data.items() if key != "source"}
    try:
        config = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems += _validation_problems(exc, source)
        problems += _secret_problems_of_valid_sections(data, env, source)
        raise ConfigError.collect(problems) from None
    problems += config.secret_problems(env)
    for check in checks:
        problems += check(config)
    if problems:
        raise ConfigError.collect(problems)
    return config


_CONNECTOR = TypeAdapter(ConnectorConfig)
_SECRET_SECTIONS: dict[str, type[_SecretHolder]] = {"server": ServerConfig, "digest": DigestConfig}


def _secret_problems_of_valid_sections(
    data: Mapping[str, Any], environ: Mapping[str, str], source: str
) -> list[ConfigError]:
    """Secrets of the sections that are valid on their own, when the whole file is not.

    So a missing environment variable is reported together with a typo elsewhere, rather
    than after the admin has fixed the typo and tried again.
    """
    sections: list[tuple[str, Callable[[Any], _SecretHolder], Any]] = [
        (key, model.model_validate, data[key]) for key, model in _SECRET_SECTIONS.items()
        if isinstance(data.get(key), Mapping)
    ]
    connectors = data.get("connectors")
    if isinstance(connectors, Mapping):
        sections += [
            (f"connectors.{_toml_key(str(name))}", _CONNECTOR.validate_python, raw)
            for name, raw in connectors.items()
            if isinstance(raw, Mapping) and raw.get("enabled", True) is not False
        ]
    notifications = data.get("notifications")
    if isinstance(notifications, Mapping) and isinstance(notifications.get("slack"), Mapping):
        slack = notifications["slack"]
        sections.append(("notifications.slack", SlackAlertsConfig.model_validate, slack))
    problems: list[ConfigError] = []
    for key, validate, raw in sections:
        try:
            section = validate(raw)
        except ValidationError:
            continue  # reported with the file's other problems
        problems += section._resolve(key, environ, _base_dir(source), source)
        if isinstance(section, ServerConfig) and section.oidc is not None:
            problems += section.oidc._resolve("server.oidc", environ, _base_dir(source), source)
    return problems


# --------------------------------------------------------------------------- error rendering

_PROBLEMS = {
    "missing": "missing required key",
    "extra_forbidden": "unknown key",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "path_type": "expected a file path string",
}


_SECTIONS = ("organisation", "database", "server", "rules", "digest")


def _validation_problems(exc: ValidationError, source: str) -> list[ConfigError]:
    """Every pydantic error as one `ConfigError` each, unknown keys first.

    An unknown key is usually a typo, and the typo also makes the key it was meant to be
    "missing": naming the typo first tells the admin what to fix.
    """
    unknown: list[ConfigError] = []
    other: list[ConfigError] = []
    for error in exc.errors(include_url=False):
        found = unknown if error["type"] == "extra_forbidden" else other
        found += [ConfigError(key, problem, source) for key, problem in _explain(error)]
    return unknown + other


def _explain(error: Any) -> list[tuple[str, str]]:
    """Turn one pydantic error into (dotted key, problem) pairs (a validator may name several)."""
    raw_loc: tuple[str | int, ...] = tuple(error["loc"])
    loc: list[str | int] = list(raw_loc)
    # Discriminated unions add the tag after the connector name: connectors.gh.greenhouse.x
    if len(loc) >= 3 and loc[0] == "connectors" and loc[2] in _CONNECTOR_TYPES:
        del loc[2]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    # A value under a secret-looking key may be a secret typed in by mistake: never echo it.
    quiet = _names_a_secret(raw_loc)
    got = "" if quiet else f", got {_show(value)}"
    if kind == "value_error":
        cause = ctx.get("error")
        causes = cause.errors if isinstance(cause, _KeyedValueErrors) else [cause]
        keyed = [
            (_dotted((*loc, *c.subkey)) or "config", c.problem)
            for c in causes
            if isinstance(c, _KeyedValueError)
        ]
        if keyed:
            return keyed
        problem = str(cause)
    elif kind == "extra_forbidden":
        problem = "unknown key" + _unknown_key_hint(raw_loc)
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
        expected = ", ".join(_CONNECTOR_TYPES)
        if kind == "union_tag_invalid":
            tag = ctx.get("tag")
            problem = f"unknown connector type {tag!r}{_did_you_mean(tag, _CONNECTOR_TYPES)}"
            problem += f"; expected one of: {expected}"
        else:
            problem = f"missing required key (one of: {expected})"
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        problem = f"expected one of {ctx.get('expected')}{got}{_did_you_mean(value, choices)}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        problem = error["msg"].replace("Input should be", "must be") + got
    elif kind in ("too_short", "string_too_short"):
        problem = "must not be empty"
    elif kind == "missing" and len(loc) == 1 and loc[0] in _SECTIONS:
        problem = f"missing required section [{loc[0]}]"
    elif kind in _PROBLEMS:
        problem = _PROBLEMS[kind]
        if kind != "missing":
            problem += got
    else:
        problem = error["msg"]
    return [(_dotted(tuple(loc)) or "config", problem)]


_SECRET_WORDS = ("secret", "token", "password", "credential", "api_key")


def _names_a_secret(loc: Sequence[str | int]) -> bool:
    names = [part.lower() for part in loc if isinstance(part, str)]
    return bool(names) and (
        names[-1].endswith(("_env", "_file")) or any(w in names[-1] for w in _SECRET_WORDS)
    )


def _did_you_mean(value: object, choices: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.casefold() == value.casefold()]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key_hint(loc: Sequence[str | int]) -> str:
    """" (did you mean 'name'?)" from the keys the enclosing table knows."""
    model = _model_at(loc[:-1])
    key = loc[-1]
    if model is None or not isinstance(key, str):
        return ""
    known = [
        field.alias or name
        for name, field in model.model_fields.items()
        if not (model is Config and name == "source")
    ]
    for suffix, holder in (("_env", "environment variable"), ("_file", "file")):
        if key + suffix in known:
            return f" (secrets never go in this file: set {key}{suffix} to the {holder} holding it)"
    hint = _did_you_mean(key, known)
    return hint or f" (expected one of: {', '.join(known)})"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the table at a pydantic error location (with connector type tags)."""
    model: type[BaseModel] = Config
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)), None
        )
        if field is None:
            return None
        annotation = _without_none(field.annotation)
        if get_origin(annotation) in (list, dict):
            if not parts:
                return None
            parts.pop(0)  # the list index or the table's key, e.g. the connector's name
        models = _models_in(annotation)
        if len(models) > 1:  # a discriminated union: pydantic puts the tag in the location
            tag = parts.pop(0) if parts else None
            models = [m for m in models if tag in get_args(m.model_fields["type"].annotation)]
        if len(models) != 1:
            return None
        model = models[0]
    return model


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _toml_key(part)
    return out


def _toml_key(part: str) -> str:
    """A key as TOML spells it: bare, else a basic string with its escapes (a key holding a
    line break stays on its problem's one line)."""
    return part if _TOML_BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)


def _hide_url_password(url: str) -> str:
    """``scheme://user:***@host``: a URL fit to print (logs, summaries, reprs)."""
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", url)


def _show(value: object) -> str:
    """A short, one-line rendering of a user-supplied (never secret) value."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)
_TOML_DUPLICATE_TABLE = re.compile(r"^Cannot declare (?P<key>\(.*\)) twice$")
_HEADER_LINE = re.compile(r"^\s*\[\[?\s*(?P<key>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-.\"' ]+?)\s*=")


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, source: str) -> ConfigError:
    match = _TOML_POSITION.match(str(exc))
    message = match["msg"] if match else str(exc)
    line = int(match["line"]) if match and match["line"] else None
    duplicate = _TOML_DUPLICATE_TABLE.match(message)
    if duplicate:
        try:
            parts = ast.literal_eval(duplicate["key"])
        except (ValueError, SyntaxError):
            parts = None
        if isinstance(parts, tuple) and all(isinstance(p, str) for p in parts):
            where = f" at line {line}" if line else ""
            return ConfigError(_dotted(parts), f"table is declared twice{where}", source)
    key = _key_at_line(text, line) if line else None
    where = f" at line {line}, column {match['col']}" if line and match else " at end of file"
    if message == "Cannot overwrite a value":
        message = "key is set twice"
    return ConfigError(key or "config", f"TOML syntax error{where}: {message}", source)


def _key_at_line(text: str, line: int) -> str | None:
    """Best effort: the dotted key being written on `line` (1-based), for the error message."""
    lines = text.splitlines()
    table = ""
    for current in lines[: line - 1]:
        if header := _HEADER_LINE.match(current):
            table = header["key"].replace(" ", "")
    if line - 1 >= len(lines):
        return table or None
    target = lines[line - 1]
    if header := _HEADER_LINE.match(target):
        return header["key"].replace(" ", "")
    if key := _KEY_LINE.match(target):
        name = key["key"].strip().replace(" ", "")
        return f"{table}.{name}" if table else name
    return table or None
