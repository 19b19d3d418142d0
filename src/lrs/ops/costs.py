"""Activity costs: what an activity cost to make and run, set by the training office (the
``cohorts`` or ``admin`` scope), read back by cost per completion."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.ops.audit import record as _record
from lrs.ops.caller import Caller
from lrs.scopes import COSTS
from lrs.store import costs as cost_store
from lrs.store.costs import Cost as Cost
from lrs.store.database import Database
from lrs.xapi.errors import BadRequest, NotFound
from lrs.xapi.validate import check_iri

_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = Decimal("1e15")


def check_amount(amount: Decimal | float | int | str) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise BadRequest(f"amount: must be a number, got {amount!r}") from None
    if not value.is_finite() or value < 0 or value >= MAX_AMOUNT:
        raise BadRequest(f"amount: must be at least 0 and below {MAX_AMOUNT:,.0f}, got {amount!r}")
    if value != value.quantize(Decimal("0.01")):
        raise BadRequest(f"amount: at most two decimals, got {amount!r}")
    return value


def check_currency(currency: str) -> str:
    if not _CURRENCY.fullmatch(currency):
        raise BadRequest(f"currency: an ISO 4217 code such as 'NOK' or 'EUR', got {currency!r}")
    return currency


async def put(db: Database, who: Caller, activity: str, amount: Decimal, currency: str) -> Cost:
    who.require(COSTS)
    check_iri(activity, "activity")
    value, code = check_amount(amount), check_currency(currency)

    async def work(conn: AsyncConnection) -> Cost:
        cost = await cost_store.put(conn, who.store_id, activity, value, code)
        await _record(conn, who, "cost.set", activity, {"amount": str(value), "currency": code})
        return cost

    return await db.write(work)


async def list_all(db: Database, who: Caller) -> list[Cost]:
    who.require(COSTS)
    return await db.read(lambda conn: cost_store.list_all(conn, who.store_id))


async def delete(db: Database, who: Caller, activity: str) -> None:
    who.require(COSTS)
    check_iri(activity, "activity")

    async def work(conn: AsyncConnection) -> None:
        if not await cost_store.delete(conn, who.store_id, activity):
            raise NotFound(f"no cost is recorded for {activity!r}")
        await _record(conn, who, "cost.delete", activity, {})

    await db.write(work)
