"""The `tincan` package (Rustici's Python xAPI client) as a real third-party client.

tincan 1.0.0 has two known faults we work around here rather than in the server:
it never sends ``If-None-Match`` when it creates a profile document (xAPI 1.0.3 requires the
client to send one of the two precondition headers, and the LRS refuses a profile PUT with
neither), and it never reads ``ETag`` back (it looks a header name up in a list of pairs).
``PreconditionAwareLRS`` and ``etag_of`` fill in what the spec asks of the client. Its ``about()`` also
refuses any LRS that lists version 2.0.0; see conformance/NOTES.md.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
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


class PreconditionAwareLRS(RemoteLRS):  # type: ignore[misc]
    """RemoteLRS that creates profile documents with ``If-None-Match: *``, as xAPI requires."""

    def _send_request(self, request: Any) -> Any:
        profile_put = request.method == "PUT" and request.resource.endswith("/profile")
        if profile_put and "If-Match" not in request.headers:
            request.headers["If-None-Match"] = "*"
        return super()._send_request(request)


def etag_of(response: Any) -> str:
    """The ETag tincan drops: read from the HTTP response it keeps."""
    tag: str = response.response.getheader("etag")
    return tag


@pytest.fixture(scope="module")
def lrs(server, credential) -> RemoteLRS:
    return PreconditionAwareLRS(
        endpoint=server.xapi + "/", username=credential.key, password=credential.secret, version="1.0.3"
    )


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
