"""Webhook deliveries stored by concurrent requests share transactions (group commit): each
is stored once, a re-delivery is a duplicate of the stored one, and the writer thread leaves
when idle and comes back for the next delivery."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import Engine, select

from taskplanner.inbox import DeliveryWriter, StoredDelivery
from taskplanner.store import models as m
from taskplanner.store.database import transaction


async def store_all(writer: DeliveryWriter, ids: list[str]) -> list[StoredDelivery]:
    return await asyncio.gather(
        *(
            writer.store(
                connector="greenhouse",
                delivery_id=delivery_id,
                headers={"Greenhouse-Event-ID": delivery_id, "Authorization": "Bearer x"},
                body=f'{{"delivery": "{delivery_id}"}}'.encode(),
            )
            for delivery_id in ids
        )
    )


def stored_rows(db: Engine) -> list[tuple[str, bytes, str]]:
    with transaction(db, read_only=True) as session:
        rows = session.execute(
            select(m.InboxDelivery.delivery_id, m.InboxDelivery.body, m.InboxDelivery.headers)
            .order_by(m.InboxDelivery.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_concurrent_deliveries_are_each_stored_once(db: Engine) -> None:
    writer = DeliveryWriter(db)
    ids = [f"d{n}" for n in range(40)] + [f"d{n}" for n in range(0, 40, 4)]  # 10 again

    results = asyncio.run(store_all(writer, ids))

    assert sum(not r.duplicate for r in results) == 40
    assert sum(r.duplicate for r in results) == 10
    by_delivery = {d: r.id for d, r in zip(ids, results, strict=True) if not r.duplicate}
    for delivery_id, result in zip(ids, results, strict=True):
        assert result.id == by_delivery[delivery_id]  # a duplicate names the stored one
    rows = stored_rows(db)
    assert sorted(d for d, _, _ in rows) == sorted(f"d{n}" for n in range(40))
    assert all(body == f'{{"delivery": "{d}"}}'.encode() for d, body, _ in rows)
    assert all("authorization" not in headers for _, _, headers in rows)  # never kept


def test_the_writer_thread_leaves_when_idle_and_comes_back(db: Engine) -> None:
    writer = DeliveryWriter(db, idle_seconds=0.3)
    before = set(threading.enumerate())

    asyncio.run(store_all(writer, ["first"]))
    (mine,) = [t for t in threading.enumerate() if t.name == "inbox-writer" and t not in before]
    mine.join(timeout=5)
    assert not mine.is_alive(), "the idle writer thread did not leave"
    (again,) = asyncio.run(store_all(writer, ["second"]))

    assert not again.duplicate
    assert [d for d, _, _ in stored_rows(db)] == ["first", "second"]
