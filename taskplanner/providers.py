"""Every provider a connector can be configured for, in one table: its ``type``, the name people
know it by, whether it is an ATS, and where its connector and loopback fake live.

The runtime builds connectors from here, the sync runner and the configuration ask which types
are ATSs, failure messages name the provider, and the sandbox and the test suites find each
ATS's fake here. A provider's connector or fake that is not in this code base yet (Lever and
Ashby until theirs land) is refused with one line instead of a traceback.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, FatalConnectorError


class ProviderUnavailable(RuntimeError):  # noqa: N818 - reads as what happened
    """The provider is known but its connector (or fake) is not part of this version."""


@dataclass(frozen=True)
class Provider:
    """One ``[connectors.<name>] type``.

    ``connector`` and ``fake`` are ``"module:Class"``; the class is imported only when used,
    so a missing module makes the provider unavailable rather than breaking every import.
    The connector class builds itself with ``from_config(name, cfg, **options)``, where the
    options ``policy`` (a ``connectors.http.RetryPolicy``) and ``clock`` replace its defaults
    (tests make retries instant that way). The fake implements
    ``taskplanner.sandbox.fake_ats.FakeATS`` and takes ``async_webhooks=True``.
    """

    type: str
    display_name: str
    is_ats: bool
    connector: str
    fake: str | None = None  # the loopback fake an ATS is tested and sandboxed against

    @property
    def connector_available(self) -> bool:
        return _module_exists(self.connector)

    @property
    def fake_available(self) -> bool:
        return self.fake is not None and _module_exists(self.fake)

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot be used here, in one line; None when it can."""
        if self.connector_available:
            return None
        return (
            f"the {self.display_name} connector is not available in this version of "
            f"taskplanner (available: {', '.join(available_types(ats=self.is_ats))})"
        )

    def connector_class(self) -> builtins.type[Any]:
        """The class implementing ``connectors.base.Connector`` (``from_config(name, cfg)``)."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise ProviderUnavailable(reason)
        return _load(self.connector)

    def fake_class(self) -> builtins.type[Any]:
        """The loopback fake (a ``taskplanner.sandbox.fake_ats.FakeATS``) of this ATS."""
        if self.fake is None or not self.fake_available:
            raise ProviderUnavailable(f"there is no fake {self.display_name} in this version")
        return _load(self.fake)


PROVIDERS: dict[str, Provider] = {
    provider.type: provider
    for provider in (
        Provider(
            "greenhouse",
            "Greenhouse",
            is_ats=True,
            connector="connectors.greenhouse:GreenhouseConnector",
            fake="taskplanner.sandbox.fake_greenhouse:FakeGreenhouse",
        ),
        Provider(
            "lever",
            "Lever",
            is_ats=True,
            connector="connectors.lever:LeverConnector",
            fake="taskplanner.sandbox.fake_lever:FakeLever",
        ),
        Provider(
            "ashby",
            "Ashby",
            is_ats=True,
            connector="connectors.ashby:AshbyConnector",
            fake="taskplanner.sandbox.fake_ashby:FakeAshby",
        ),
        Provider(
            "google_calendar",
            "Google Calendar",
            is_ats=False,
            connector="connectors.google_calendar:GoogleCalendarConnector",
        ),
        Provider(
            "microsoft_calendar",
            "Microsoft 365",
            is_ats=False,
            connector="connectors.microsoft_calendar:MicrosoftCalendarConnector",
        ),
    )
}
# In the table's order: the first is the default ATS of the sandbox and the test suites.
ATS_TYPES: tuple[str, ...] = tuple(t for t, p in PROVIDERS.items() if p.is_ats)
CALENDAR_TYPES: tuple[str, ...] = tuple(t for t, p in PROVIDERS.items() if not p.is_ats)


def provider(type_: str) -> Provider:
    """The provider of a configured ``type``; KeyError for a type nobody knows."""
    return PROVIDERS[type_]


def display_name(type_: str | None) -> str:
    """The name people know a type by ("Greenhouse" for ``greenhouse``); an unknown type is
    shown as it is spelt."""
    known = PROVIDERS.get(type_ or "")
    return known.display_name if known is not None else (type_ or "unknown provider")


def available_types(*, ats: bool | None = None) -> list[str]:
    """Types whose connector is in this version (``ats``: only ATSs, or only calendars)."""
    return [
        t
        for t, p in PROVIDERS.items()
        if (ats is None or p.is_ats == ats) and p.connector_available
    ]


def sandbox_types() -> list[str]:
    """ATS types the sandbox and the end-to-end suites can run: connector and fake both here."""
    return [
        t for t in ATS_TYPES if PROVIDERS[t].connector_available and PROVIDERS[t].fake_available
    ]


def describe_failure(connector: str, type_: str | None, error: BaseException) -> str:
    """One line for ``broken_integration``, ``/readyz`` and ``status``: the connector, the
    provider by name and what went wrong (never a secret: ConnectorError messages carry none).

    ``greenhouse: Greenhouse rejected the credentials (HTTP 401): token request refused ...``
    """
    name = display_name(type_)
    if not isinstance(error, ConnectorError):
        return f"{connector}: {name}: internal error ({type(error).__name__})"
    status = f" (HTTP {error.status})" if error.status is not None else ""
    if isinstance(error, FatalConnectorError) and error.status in (401, 403):
        return f"{connector}: {name} rejected the credentials{status}: {error.message}"
    return f"{connector}: {name}: {error.message}{status}"


def _module_exists(target: str) -> bool:
    module = target.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _load(target: str) -> type[Any]:
    module_name, _, class_name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls
