"""Lever: Data API v1 polling and signed webhooks, mapped to canonical snapshots.

No other package sees a Lever payload. ``client`` speaks the API (Basic auth with the API key,
offset pagination, the rate limit kept on our side), ``mapping`` turns records into snapshots,
``webhooks`` checks deliveries (signature in the body, freshness), ``connector`` polls by
partition and fetches what a webhook points at. Docs: https://hire.lever.co/developer/documentation
"""

from __future__ import annotations

from connectors.lever.connector import PARTITION_KINDS, PARTITIONS, LeverConfigLike, LeverConnector
from connectors.lever.mapping import Links

__all__ = ["PARTITIONS", "PARTITION_KINDS", "LeverConfigLike", "LeverConnector", "Links"]
