"""The ``taskplanner`` command line: one Typer app with a sub-app per command group.

Every command takes ``--config PATH`` after its name; a configuration problem exits 2 with
one line on stderr naming the key and the file (see `load_config_or_exit`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from taskplanner import __version__
from taskplanner.config import (
    Config,
    ConfigError,
    GoogleCalendarConfig,
    MicrosoftCalendarConfig,
    format_duration,
    load_config,
)

EXIT_OK = 0
EXIT_USAGE = 2

app = typer.Typer(
    name="taskplanner",
    help="Keep one task list per recruiting coordinator in sync with the ATS and calendars.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: short lines that are easy to grep in logs
)

# Shared by every command: `taskplanner <command> --config prod.toml`.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration file (default: $TASKPLANNER_CONFIG, else ./taskplanner.toml).",
        show_default=False,
        dir_okay=False,
    ),
]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line to stderr and exit (2 = usage or configuration error)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load_config_or_exit(path: Path | None) -> Config:
    """Load the configuration for a command, or exit 2 with the one-line `ConfigError`."""
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc))


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"taskplanner {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Keep one task list per recruiting coordinator in sync with the ATS and calendars."""


# --------------------------------------------------------------------------- config

config_app = typer.Typer(help="Inspect the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration (keys, values, secrets) and print a summary."""
    loaded = load_config_or_exit(config)
    typer.echo(describe_config(loaded))


def describe_config(config: Config) -> str:
    """A short human summary of a loaded configuration; never includes secret values."""
    org = config.organisation
    rules = config.rules
    lines = [
        f"config ok: {config.source}",
        f"organisation: {org.name} (account owner {org.account_owner}, timezone {org.timezone})",
        f"database: {_hide_password(config.database.url)}",
        f"server: {config.server.host}:{config.server.port}"
        + (" (API tokens required)" if config.server.api_tokens_env else " (loopback API only)"),
    ]
    if config.connectors:
        lines.append("connectors:")
        width = max(len(name) for name in config.connectors)
        for name, connector in config.connectors.items():
            details = f"poll every {format_duration(connector.poll_interval)}"
            if isinstance(connector, GoogleCalendarConfig | MicrosoftCalendarConfig):
                details += f", {len(connector.calendars)} calendar(s)"
            if not connector.enabled:
                details += ", disabled"
            lines.append(f"  {name:<{width}}  {connector.type:<18}  {details}")
    else:
        lines.append("connectors: none")
    lines += [
        f"people: {len(config.people)}",
        f"job overrides: {len(config.jobs)}",
        f"rules: evaluation due after {format_duration(rules.evaluation_due_after)}, "
        f"job live within {format_duration(rules.job_live_within)}, "
        f"inactivity after {format_duration(rules.inactivity_after)}",
        f"  scheduling stages: {', '.join(rules.scheduling_stages) or '-'}",
        f"  inactivity stages: {', '.join(rules.inactivity_stages) or '-'}",
    ]
    if config.digest is not None:
        lines.append(
            f"digest: daily at {config.digest.send_at:%H:%M} ({org.timezone}) "
            f"from {config.digest.from_}"
        )
    else:
        lines.append("digest: off")
    return "\n".join(lines)


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``taskplanner = "taskplanner.cli:main"``)."""
    app(args=argv, prog_name="taskplanner")


if __name__ == "__main__":
    main()
