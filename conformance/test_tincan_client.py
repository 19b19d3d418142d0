"""The `tincan` package (Rustici's Python xAPI client) as a real third-party client, driven
as an LMS drives it.

tincan 1.0.0 creates profile documents with a PUT that carries neither ``If-Match`` nor
``If-None-Match`` (xAPI asks the LRS to refuse that with a 400). The tests run it against a
store with ``profile_put_creates_without_precondition`` on, the setting made for such
clients, and supply no header it omits. It never reads ``ETag`` back (it looks a header name
up in a list of pairs), so ``etag_of`` reads it from the HTTP response it keeps. Its
``about()`` refuses any LRS that lists version 2.0.0, so it is tried against a server that
serves 1.0.3 only; see conformance/NOTES.md.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from tests.harness import Cred, Server, make_credential, new_store
from tincan import (
    Activity,
    ActivityProfileDocument,
    Agent,
    AgentProfileDocument,
    RemoteLRS,
    StateDocument,
    Statement,
    StatementRef,
    Verb,
)

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
JSON = "application/json"


def etag_of(response: Any) -> str:
    """The ETag tincan drops: read from the HTTP response it keeps."""
    tag: str = response.response.getheader("etag")
    return tag


def client_for(server: Server, cred: Cred) -> RemoteLRS:
    return RemoteLRS(endpoint=server.xapi + "/", username=cred.key, password=cred.secret, version="1.0.3")


@pytest.fixture(scope="module")
def lrs(server) -> RemoteLRS:
    """tincan on a store that lets older clients create profile documents without a header."""
    name = new_store(server.database_url, "tincan", profile_put_creates_without_precondition="true")
    return client_for(server, make_credential(server.database_url, store=name))


def run(fn: Any, *args: Any) -> Any:
    # tincan is synchronous; keep the event loop free for the other fixtures.
    return asyncio.to_thread(fn, *args)


async def test_statements_query_paging_and_voiding(lrs):
    course = Activity(id=f"https://courses.example.no/tincan-{uuid.uuid4().hex}")
    kari = Agent(name="Kari", mbox=f"mailto:kari-{uuid.uuid4().hex[:6]}@example.no")
    saved = await run(lrs.save_statement, Statement(actor=kari, verb=Verb(id=COMPLETED), object=course))
    assert saved.success, saved.data
    batch = [Statement(actor=kari, verb=Verb(id=COMPLETED), object=course) for _ in range(4)]
    assert (await run(lrs.save_statements, batch)).success

    page = await run(lrs.query_statements, {"activity": course, "limit": 2})
    assert page.success and len(page.content.statements) == 2 and page.content.more
    seen = [s.id for s in page.content.statements]
    while page.content.more:
        page = await run(lrs.more_statements, page.content)
        assert page.success
        seen += [s.id for s in page.content.statements]
    assert len(seen) == 5 and len(set(seen)) == 5

    target = seen[0]
    void = Statement(
        actor=kari, verb=Verb(id="http://adlnet.gov/expapi/verbs/voided"), object=StatementRef(id=target)
    )
    assert (await run(lrs.save_statement, void)).success
    assert not (await run(lrs.retrieve_statement, target)).success
    assert (await run(lrs.retrieve_voided_statement, target)).success


async def test_state_documents(lrs):
    course = Activity(id=f"https://courses.example.no/tincan-{uuid.uuid4().hex}")
    kari = Agent(mbox=f"mailto:kari-{uuid.uuid4().hex[:6]}@example.no")
    doc = StateDocument(
        activity=course, agent=kari, id="bookmark", content="page 7", content_type="text/plain"
    )
    assert (await run(lrs.save_state, doc)).success
    got = await run(lrs.retrieve_state, course, kari, "bookmark")
    assert got.success and bytes(got.content.content) == b"page 7"
    ids = await run(lrs.retrieve_state_ids, course, kari)
    assert ids.content == ["bookmark"]
    assert (await run(lrs.delete_state, doc)).success
    assert (await run(lrs.retrieve_state_ids, course, kari)).content == []


async def test_activity_and_agent_profiles(lrs):
    course = Activity(id=f"https://courses.example.no/tincan-{uuid.uuid4().hex}")
    created = ActivityProfileDocument(
        activity=course, id="meta", content='{"level": 1}', content_type="application/json"
    )
    assert (await run(lrs.save_activity_profile, created)).success
    got = await run(lrs.retrieve_activity_profile, course, "meta")
    assert got.success and json.loads(bytes(got.content.content)) == {"level": 1}
    updated = got.content
    updated.content = '{"level": 2}'
    updated.etag = etag_of(got)
    assert (await run(lrs.save_activity_profile, updated)).success
    got = await run(lrs.retrieve_activity_profile, course, "meta")
    assert json.loads(bytes(got.content.content)) == {"level": 2}

    kari = Agent(mbox=f"mailto:kari-{uuid.uuid4().hex[:6]}@example.no")
    prefs = AgentProfileDocument(
        agent=kari, id="prefs", content='{"lang": "nb"}', content_type="application/json"
    )
    assert (await run(lrs.save_agent_profile, prefs)).success
    got = await run(lrs.retrieve_agent_profile, kari, "prefs")
    assert json.loads(bytes(got.content.content)) == {"lang": "nb"}
    assert (await run(lrs.delete_agent_profile, got.content)).success


async def test_profile_put_rules_without_the_setting_and_on_overwrite(server, credential, lrs):
    """The default stays as xAPI asks: tincan's header-less create is a 400. With the setting,
    an overwrite without a header is still a 409, so nothing is lost silently."""
    course = Activity(id=f"https://courses.example.no/tincan-{uuid.uuid4().hex}")
    strict = client_for(server, credential)
    doc = ActivityProfileDocument(
        activity=course, id="meta", content='{"a": 1}', content_type="application/json"
    )
    refused = await run(strict.save_activity_profile, doc)
    assert not refused.success and refused.response.status == 400
    assert (await run(lrs.save_activity_profile, doc)).success
    again = ActivityProfileDocument(
        activity=course, id="meta", content='{"a": 2}', content_type="application/json"
    )
    overwrite = await run(lrs.save_activity_profile, again)
    assert not overwrite.success and overwrite.response.status == 409
    got = await run(lrs.retrieve_activity_profile, course, "meta")
    assert json.loads(bytes(got.content.content)) == {"a": 1}


async def test_a_1_0_3_only_server_is_one_tincan_accepts(server_1_0_3, credential):
    about = await run(client_for(server_1_0_3, credential).about)
    assert about.success, about.data
    assert [str(v) for v in about.content.version] == ["1.0.3"]
