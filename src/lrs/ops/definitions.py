"""What the LRS knows of an activity (its canonical definition) and of an agent (the names
statements gave it)."""

from __future__ import annotations

from typing import Any

from lrs.jsontext import dumps
from lrs.ops.caller import Caller
from lrs.store import activities as activity_store
from lrs.store import agents as agent_store
from lrs.store.database import Database
from lrs.xapi.activities import activity_object, person
from lrs.xapi.agents import ifi_key

_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


async def activity(db: Database, who: Caller, activity_id: str) -> dict[str, Any]:
    """The Activity object; one the LRS has no definition for is still an Activity (2.0)."""
    definition = await db.read(
        lambda conn: activity_store.get(conn, who.store_id, activity_id), reader=who.key, autocommit=True
    )
    return activity_object(activity_id, definition)


async def agent(db: Database, who: Caller, agent: dict[str, Any]) -> dict[str, Any]:
    """The Person object of an identified agent: every name and IFI the store saw it with."""
    if who.pseudonym is not None:
        agent = who.pseudonym.agent(agent)
    key = ifi_key(agent)
    assert key is not None
    ifi = {k: agent[k] for k in _IFIS if k in agent}
    names = await db.read(
        lambda conn: agent_store.names(conn, who.store_id, key, dumps(ifi)), reader=who.key, autocommit=True
    )
    return person(agent, names)
