"""Greenhouse: Harvest v3 polling and signed webhooks, mapped to canonical snapshots.

No other package sees a Greenhouse payload. ``client`` speaks Harvest v3 (OAuth client
credentials, Link-header cursors, rate limit), ``mapping`` turns records and webhook payloads
into snapshots, ``webhooks`` checks and parses deliveries, ``connector`` polls by partition.
Docs: https://harvestdocs.greenhouse.io and github.com/grnhse/greenhouse-api-docs (webhooks).
"""

from __future__ import annotations

from connectors.base import ConnectorError
from connectors.greenhouse.connector import (
    PARTITION_KINDS,
    PARTITIONS,
    GreenhouseConfigLike,
    GreenhouseConnector,
)
from connectors.greenhouse.mapping import Links

__all__ = [
    "PARTITIONS",
    "PARTITION_KINDS",
    "ConnectorError",
    "GreenhouseConfigLike",
    "GreenhouseConnector",
    "Links",
]
