"""The HTTP side of taskplanner: JSON API, the coordinator's page, webhooks, ops endpoints."""

from __future__ import annotations
