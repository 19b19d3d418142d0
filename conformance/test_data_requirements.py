"""xAPI Data requirements (statements and their parts), one test per requirement id.

Every test talks to the real server over HTTP. Names carry the requirement id so that
`pytest -k XAPI_00038` runs the check for that requirement.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest
from tests.factories import VOIDED, activity, agent, statement, voiding

SUB = {
    "objectType": "SubStatement",
    "actor": {"mbox": "mailto:sub@example.no"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
    "object": {"id": "https://courses.example.no/sub"},
}


async def status(client: httpx.AsyncClient, body: Any) -> int:
    return (await client.post("/statements", json=body)).status_code


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    s = copy.deepcopy(base or statement())
    target = s
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return s


async def test_XAPI_00001_null_is_rejected_except_in_extensions(client):
    for path in ("actor", "verb", "object", "context", "result", "actor.name"):
        assert await status(client, with_(path, None)) == 400, path
    ok = statement(
        result={"extensions": {"http://e.no/x": None}}, context={"extensions": {"http://e.no/y": None}}
    )
    assert await status(client, ok) == 200


@pytest.mark.parametrize("missing", ["actor", "verb", "object"])
async def test_XAPI_00003_00004_00005_required_properties(client, missing):
    s = statement()
    del s[missing]
    assert await status(client, s) == 400


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("result", {"score": {"raw": "5"}}),
        ("result", {"success": "true"}),
        ("result", {"completion": 1}),
        ("result", {"response": 5}),
        ("context", {"platform": 1}),
        ("context", {"revision": {"a": 1}}),
        ("result", {"score": 0.5}),
    ],
)
async def test_XAPI_00006_wrong_data_types(client, path, value):
    assert await status(client, with_(path, value)) == 400


@pytest.mark.parametrize(
    "key",
    [
        "Actor",
        "VERB",
        "Object",
        "Result",
        "Context",
        "Timestamp",
        "Stored",
        "Authority",
        "Version",
        "Attachments",
        "ID",
    ],
)
async def test_XAPI_00008_00010_key_case(client, key):
    s = statement()
    s[key] = s.get(key.lower(), "x")
    r = await client.post("/statements", json=s)
    assert r.status_code == 400 and key in r.json()["message"]


@pytest.mark.parametrize("value", ["true-faLse", "choiCe", "Other", "LIKERT"])
async def test_XAPI_00009_enumerated_values_are_case_sensitive(client, value):
    s = statement(obj=activity(interactionType=value))
    assert await status(client, s) == 400


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("verb.id", "no-scheme"),
        ("object.id", "ab=c://should.fail.com"),
        ("actor", {"openid": "not a uri"}),
        ("actor", {"account": {"homePage": "x", "name": "a"}}),
    ],
)
async def test_XAPI_00011_iris_need_a_scheme(client, path, value):
    assert await status(client, with_(path, value)) == 400


@pytest.mark.parametrize("tag", ["a12345678", "en_US", "zh-z-aaa-z-bbb-c-ccc"])
async def test_XAPI_00013_00121_language_tags(client, tag):
    assert await status(client, with_("verb.display", {tag: "x"})) == 400
    assert await status(client, with_("verb.display", {"sr-Latn-RS": "x"})) == 200


async def test_XAPI_00016_00018_voiding(client):
    course = activity()
    [target] = (await client.post("/statements", json=statement(obj=course))).json()
    [void_id] = (await client.post("/statements", json=voiding(target))).json()
    assert (await client.get("/statements", params={"statementId": target})).status_code == 404
    assert (await client.get("/statements", params={"voidedStatementId": target})).status_code == 200
    await client.post("/statements", json=voiding(void_id))
    assert (await client.get("/statements", params={"statementId": void_id})).status_code == 200


async def test_XAPI_00017_00020_voiding_object_must_be_statement_ref(client):
    assert await status(client, statement(verb=VOIDED)) == 400
    # The target need not exist.
    assert await status(client, voiding(str(uuid.uuid4()))) == 200


@pytest.mark.parametrize("value", ["should fail", "01/011/2015", "2008-09-15T15:53:00.601-00:00"])
async def test_XAPI_00022_00123_timestamps(client, value):
    assert await status(client, with_("timestamp", value)) == 400
    assert await status(client, with_("object.timestamp", value, statement(obj=dict(SUB)))) == 400


async def test_XAPI_00023_00097_stored_is_set_by_the_lrs(client):
    sent = "2001-01-01T00:00:00.000Z"
    [sid] = (await client.post("/statements", json=statement(stored=sent))).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["stored"] != sent


@pytest.mark.parametrize(
    "authority",
    [
        {"objectType": "Group", "mbox": "mailto:g@e.no", "member": [agent(), agent()]},
        {"objectType": "Group", "member": [agent()]},
        {"objectType": "Group", "member": [agent(), agent(), agent()]},
        "someone",
    ],
)
async def test_XAPI_00024_00098_authority(client, authority):
    assert await status(client, statement(authority=authority)) == 400
    two = {"objectType": "Group", "member": [agent(), agent()]}
    assert await status(client, statement(authority=two)) == 200


@pytest.mark.parametrize(
    "value",
    ["AA97B177-9383-4934-8543-0F91A7A028368", "MA97B177-9383-4934-8543-0F91A7A02836", 12345, {"a": 1}],
)
async def test_XAPI_00027_to_00030_uuids(client, value):
    assert await status(client, statement(id=value)) == 400
    assert await status(client, statement(context={"registration": value})) == 400
    assert await status(client, statement(obj={"objectType": "StatementRef", "id": value})) == 400


@pytest.mark.parametrize(
    "actor",
    [
        {"objectType": 123, "mbox": "mailto:a@e.no"},
        {"name": 5, "mbox": "mailto:a@e.no"},
        {"name": "none"},
        {"mbox": "mailto:a@e.no", "openid": "http://o.e.no/a"},
        {"objectType": "Group"},
        {"objectType": "Group", "member": [{"objectType": "Group", "mbox": "mailto:g@e.no"}]},
        {"mbox": "http://should.fail.com"},
        {"mbox_sha1sum": 42},
        {"openid": "no scheme"},
        {"account": "x"},
        {"account": {"name": "a"}},
        {"account": {"homePage": "http://e.no"}},
    ],
)
async def test_XAPI_00032_to_00043_agents_and_groups(client, actor):
    assert await status(client, statement(actor=actor)) == 400


async def test_XAPI_00044_00047_ids_required(client):
    assert await status(client, with_("verb", {"display": {"en": "x"}})) == 400
    assert await status(client, with_("object", {"definition": {}})) == 400


async def test_XAPI_00064_components_need_interaction_type(client):
    s = statement(obj=activity(choices=[{"id": "a", "description": {"en": "A"}}]))
    assert await status(client, s) == 400


async def test_XAPI_00065_agent_object_needs_object_type(client):
    assert await status(client, statement(obj={"mbox": "mailto:o@e.no"})) == 400
    assert await status(client, statement(obj={"objectType": "Agent", "mbox": "mailto:o@e.no"})) == 200


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("id", str(uuid.uuid4())),
        ("stored", "2026-01-01T00:00:00Z"),
        ("version", "1.0.0"),
        ("authority", {"mbox": "mailto:a@e.no"}),
        ("object", dict(SUB)),
    ],
)
async def test_XAPI_00066_to_00071_substatement_limits(client, key, value):
    sub = dict(SUB, **{key: value})
    assert await status(client, statement(obj=sub)) == 400


async def test_XAPI_00072_00073_statement_refs(client):
    assert await status(client, statement(obj={"objectType": "StatementRef"})) == 400
    ref = {"objectType": "StatementRef", "id": str(uuid.uuid4())}
    assert await status(client, statement(obj=ref)) == 200


@pytest.mark.parametrize(
    "score",
    [
        {"scaled": 1.01},
        {"scaled": -1.00001},
        {"raw": 11, "max": 10},
        {"raw": -1, "min": 0},
        {"min": 5, "max": 1},
    ],
)
async def test_XAPI_00079_to_00083_scores(client, score):
    assert await status(client, statement(result={"score": score})) == 400
    assert (
        await status(
            client,
            statement(result={"score": {"scaled": -1.0, "raw": 0.6767676, "min": 0, "max": 100.6767676}}),
        )
        == 200
    )


async def test_XAPI_00077_00124_durations(client):
    for bad in ("PA1H0M0S", "P4W1D", "1H"):
        assert await status(client, statement(result={"duration": bad})) == 400
    for good in ("PT1H0M0.1S", "P4W", "P1DT12H36M0.12567S"):
        assert await status(client, statement(result={"duration": good})) == 200


async def test_XAPI_00084_00085_revision_and_platform_only_for_activities(client):
    for prop in ("revision", "platform"):
        s = statement(obj={"objectType": "Agent", "mbox": "mailto:o@e.no"}, context={prop: "x"})
        assert await status(client, s) == 400


@pytest.mark.parametrize(
    "context",
    [
        {"contextActivities": "x"},
        {"registration": "x"},
        {"team": agent()},
        {"instructor": "x"},
        {"language": 5},
        {"statement": {"id": str(uuid.uuid4())}},
    ],
)
async def test_XAPI_00086_to_00092_context(client, context):
    assert await status(client, statement(context=context)) == 400


async def test_XAPI_00096_context_activities_served_as_arrays(client):
    parent = activity()
    [sid] = (
        await client.post("/statements", json=statement(context={"contextActivities": {"parent": parent}}))
    ).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["context"]["contextActivities"]["parent"] == [parent]


async def test_XAPI_00099_authority_is_set_from_the_credential(client, credential):
    [sid] = (await client.post("/statements", json=statement())).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["authority"]["account"]["name"] == credential.key


@pytest.mark.parametrize("version", ["0.9.9", "1.1.0", "3.0.0", "2"])
async def test_XAPI_00101_statement_version(client, version):
    assert await status(client, statement(version=version)) == 400
    assert await status(client, statement(version="1.0.3")) == 200


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("length", "27"),
        ("sha2", 5),
        ("fileUrl", "no scheme"),
        ("contentType", 5),
        ("display", "x"),
        ("usageType", "no scheme"),
    ],
)
async def test_XAPI_00102_to_00107_attachment_properties(client, key, value):
    meta = {
        "usageType": "http://e.no/u",
        "display": {"en": "a"},
        "contentType": "text/plain",
        "length": 27,
        "sha2": "a" * 64,
        "fileUrl": "http://files.e.no/a",
    }
    meta[key] = value
    assert await status(client, statement(attachments=[meta])) == 400


async def test_XAPI_00118_00120_extensions(client):
    assert await status(client, statement(result={"extensions": {"not an iri": 1}})) == 400
    assert await status(client, statement(result={"extensions": "x"})) == 400
    assert await status(client, statement(result={"extensions": {}})) == 200


async def test_XAPI_00122_timestamp_precision_is_kept(client):
    [sid] = (await client.post("/statements", json=statement(timestamp="2026-11-28T10:00:00.123Z"))).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["timestamp"].startswith("2026-11-28T10:00:00.123")


async def test_XAPI_00142_statements_are_immutable(client):
    sid = str(uuid.uuid4())
    s = statement()
    assert (await client.put("/statements", params={"statementId": sid}, json=s)).status_code == 204
    changed = dict(s, verb={"id": "http://adlnet.gov/expapi/verbs/passed"})
    r = await client.put("/statements", params={"statementId": sid}, json=changed)
    assert r.status_code == 409


async def test_XAPI_00002_floating_point_precision(client):
    value = 0.1234567
    [sid] = (
        await client.post("/statements", json=statement(result={"score": {"raw": value, "min": 0, "max": 1}}))
    ).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["result"]["score"]["raw"] == value
