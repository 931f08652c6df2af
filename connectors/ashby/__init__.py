"""Ashby: the RPC-style API with syncToken incremental reads and signed webhooks, mapped to
canonical snapshots.

No other package sees an Ashby payload. ``client`` speaks the API (basic auth, ``success:
false`` answers, cursors and syncTokens), ``mapping`` turns records and webhook data into
snapshots, ``webhooks`` checks and parses deliveries, ``connector`` polls by partition.
Docs: https://developers.ashbyhq.com (reference and guides).
"""

from __future__ import annotations

from connectors.ashby.client import AshbyClient, AshbyUnsuccessful
from connectors.ashby.connector import (
    PARTITION_KINDS,
    PARTITIONS,
    AshbyConfigLike,
    AshbyConnector,
)
from connectors.ashby.mapping import Links

__all__ = [
    "PARTITIONS",
    "PARTITION_KINDS",
    "AshbyClient",
    "AshbyConfigLike",
    "AshbyConnector",
    "AshbyUnsuccessful",
    "Links",
]
