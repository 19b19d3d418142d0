"""The protocol layer on its own: validation, timestamps, durations, language tags, formats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrs.jsontext import UnrepresentableNumber, loads
from lrs.xapi.durations import is_duration, parse_duration
from lrs.xapi.errors import BadRequest
from lrs.xapi.formats import render
from lrs.xapi.langtags import best_language, is_language_tag, parse_accept_language
from lrs.xapi.query import Format, decode_more, encode_more, parse_query
from lrs.xapi.statements import prepare, same_statement
from lrs.xapi.timestamps import _COMMON, _parse_any, format_timestamp, parse_timestamp
from lrs.xapi.validate import validator_for
from lrs.xapi.versions import Version, negotiate
from tests.corpus import INVALID, invalid_statement
from tests.factories import activity, agent, statement

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "k"}}


@pytest.mark.parametrize(("name", "mutation", "names"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_statement_is_rejected_naming_the_property(name, mutation, names):
    with pytest.raises(BadRequest) as err:
        validator_for(Version.V2).statement(invalid_statement(mutation))
    assert names in err.value.message


@pytest.mark.parametrize(
    ("mutation", "names"),
    [
        (lambda s: s.update(id=str(uuid.uuid4()) + "\n"), "id"),
        (lambda s: s["verb"].update(id="http://example.no/verb\n"), "verb.id"),
        (lambda s: s["actor"].update(mbox="mailto:kari@example.no\n"), "actor.mbox"),
        (lambda s: s.update(actor={"mbox_sha1sum": "a" * 40 + "\n"}), "mbox_sha1sum"),
    ],
    ids=["id", "verb.id", "mbox", "mbox_sha1sum"],
)
def test_a_value_with_a_trailing_newline_is_refused(mutation, names):
    """A pattern's end is the end of the text, not a final newline before it."""
    with pytest.raises(BadRequest) as err:
        validator_for(Version.V2).statement(invalid_statement(mutation))
    assert names in err.value.message


def test_versions_are_ascii_and_whole():
    for value in ("1.0.\u0663", "2.0.\u0660"):
        with pytest.raises(BadRequest):
            negotiate(value)


def test_context_agents_are_unknown_in_1_0_3():
    s = statement(context={"contextAgents": [{"objectType": "contextAgent", "agent": agent()}]})
    validator_for(Version.V2).statement(s)
    with pytest.raises(BadRequest, match="contextAgents"):
        validator_for(Version.V1).statement(s)


def test_null_is_allowed_inside_extensions():
    s = statement(result={"extensions": {"http://example.no/x": None}})
    validator_for(Version.V2).statement(s)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00.123+01:00",
        "2026-11-28T10:00:00.601+00:00",
        "20261128T100000Z",
        "2026-11-28t10:00:00z",
        "2026-11-28T10:00",
    ],
)
def test_valid_timestamps(value):
    assert parse_timestamp(value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "01/011/2015",
        "should fail",
        "2008-09-15T15:53:00.601-00",
        "2008-09-15T15:53:00.601-0000",
        "2008-09-15T15:53:00.601-00:00",
        "2026-13-01T00:00:00Z",
        "2026-11-28",
        "2026-11-28T10:00:00Z\n",
        "2026-11-28T10:00:00.5+01:00\n",
        "\u0662\u0660\u0662\u0666-11-28T10:00:00Z",  # Arabic-Indic digits
    ],
)
def test_invalid_timestamps(value):
    assert parse_timestamp(value) is None


@given(
    st.tuples(
        st.integers(0, 9999),
        st.integers(0, 19),
        st.integers(0, 39),
        st.integers(0, 29),
        st.integers(0, 69),
        st.integers(0, 69),
        st.text("0123456789", max_size=6),
        st.sampled_from(["Z", "+00:00"]),
    )
)
def test_common_timestamps_read_as_the_general_parser_reads_them(parts):
    y, mo, d, h, mi, s, fraction, zone = parts
    value = f"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}" + (f".{fraction}" if fraction else "") + zone
    assert _COMMON.fullmatch(value)
    assert parse_timestamp(value) == _parse_any(value)


def test_timestamp_offsets_are_instants():
    a = parse_timestamp("2026-11-28T10:00:00+01:00")
    assert a == datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert format_timestamp(a) == "2026-11-28T09:00:00.000000Z"


def test_stored_form_of_an_early_year_is_an_iso_timestamp():
    early = parse_timestamp("0042-03-01T00:30:00+01:00")
    assert early is not None
    written = format_timestamp(early)
    assert written == "0042-02-28T23:30:00.000000Z"
    assert parse_timestamp(written) == early


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT1H0M0.1S", 3600.1),
        ("P4W", 4 * 7 * 86400.0),
        ("P1DT12H36M0.12567S", 131760.12567),
        ("PT90S", 90.0),
        ("P1Y", 365 * 86400.0),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)
    assert is_duration(value)


@pytest.mark.parametrize(
    "value", ["P", "PT", "P4W1D", "PA1H0M0S", "1H", "P1DT", "PT1S\n", "P4W\n", "PT\u0661S"]
)
def test_invalid_durations(value):
    assert parse_duration(value) is None
    assert not is_duration(value)


@pytest.mark.parametrize(
    "tag", ["de", "de-DE", "zh-Hant", "sr-Latn-RS", "cmn", "es-419", "en-US-x-private", "i-klingon"]
)
def test_language_tags(tag):
    assert is_language_tag(tag)


@pytest.mark.parametrize(
    "tag", ["a12345678", "a12345", "en_US", "", "zh-z-aaa-z-bbb-c-ccc", "en\n", "es-\u0664\u0661\u0669"]
)
def test_invalid_language_tags(tag):
    validator = validator_for(Version.V2)
    with pytest.raises(BadRequest):
        validator.verb({"id": "http://e.no/v", "display": {tag: "x"}}, "verb")


def test_accept_language_picks_best_entry():
    ranked = parse_accept_language("nb;q=0.9, en-US, *;q=0.1")
    assert ranked == ["en-US", "nb", "*"]
    assert best_language(["nb", "en-US"], ["nn", "nb"]) == "nb"
    assert best_language(["en-GB", "nb"], ["en-US"]) == "en-GB"
    assert best_language(["de", "fr"], []) == "de"


def test_version_negotiation():
    assert negotiate("1.0") is Version.V1
    assert negotiate("1.0.3") is Version.V1
    assert negotiate("2.0.0") is Version.V2
    assert negotiate("2.0.7") is Version.V2
    for bad in (None, "0.95", "1.1.0", "3.0.0", ""):
        with pytest.raises(BadRequest):
            negotiate(bad)


def test_prepare_fills_in_lrs_properties_and_converts_2_0_timestamps():
    s = statement(
        timestamp="2026-11-28T10:00:00+02:00", context={"contextActivities": {"parent": activity("p")}}
    )
    p = prepare(s, Version.V2, AUTHORITY, "statement")
    assert uuid.UUID(p.statement["id"]) == p.id
    assert p.statement["authority"] == AUTHORITY
    assert p.statement["version"] == "2.0.0"
    assert p.statement["timestamp"] == "2026-11-28T08:00:00.000000Z"
    assert isinstance(p.statement["context"]["contextActivities"]["parent"], list)
    kept = prepare(statement(timestamp="2026-11-28T10:00:00+02:00"), Version.V1, AUTHORITY, "s")
    assert kept.statement["timestamp"] == "2026-11-28T10:00:00+02:00"


def test_same_statement_ignores_lrs_properties_and_member_order():
    a, b = agent(), agent()
    base = statement(actor={"objectType": "Group", "member": [a, b]})
    stored = prepare(dict(base, id=str(uuid.uuid4())), Version.V2, AUTHORITY, "s").statement
    stored["stored"] = "2026-01-01T00:00:00Z"
    again = prepare(
        dict(base, id=stored["id"], actor={"objectType": "Group", "member": [b, a]}),
        Version.V2,
        {"mbox": "mailto:other@e.no"},
        "s",
    )
    assert same_statement(stored, again)
    changed = prepare(
        dict(base, id=stored["id"], verb={"id": "http://e.no/other"}), Version.V2, AUTHORITY, "s"
    )
    assert not same_statement(stored, changed)


def test_ids_format_keeps_only_identifiers():
    s = statement(actor=agent("kari"), obj=activity("fire", name={"en": "Fire"}))
    out = render(s, Format.IDS, [])
    assert out["actor"] == {"objectType": "Agent", "mbox": "mailto:kari@example.no"}
    assert out["object"] == {"id": "https://courses.example.no/fire"}
    assert out["verb"] == {"id": s["verb"]["id"]}


def test_canonical_format_keeps_one_language():
    s = statement(obj=activity("fire", name={"en": "Fire", "nb": "Brann"}))
    s["verb"]["display"] = {"en-US": "completed", "nb": "fullførte"}
    out = render(s, Format.CANONICAL, ["nb"])
    assert out["object"]["definition"]["name"] == {"nb": "Brann"}
    assert out["verb"]["display"] == {"nb": "fullførte"}


def test_more_token_round_trips_and_is_bound_to_its_store():
    q = parse_query({"verb": "http://e.no/v", "since": "2026-01-01T00:00:00Z", "limit": "5"}, Version.V2, 100)
    q = q.__class__(**{**q.__dict__, "after": 42, "ceiling": 99})
    token = encode_more(q, 1, b"secret")
    assert decode_more(token, 1, b"secret") == q
    for store, key in ((2, b"secret"), (1, b"other")):
        with pytest.raises(BadRequest):
            decode_more(token, store, key)
    with pytest.raises(BadRequest):
        decode_more(token[:-2] + "xx", 1, b"secret")


def test_query_rejects_unknown_and_malformed_parameters():
    for params in (
        {"foo": "1"},
        {"limit": "-1"},
        {"ascending": "yes"},
        {"since": "yesterday"},
        {"agent": "{not json"},
        {"agent": '{"name": "no ifi"}'},
        {"registration": "x"},
        {"verb": "not an iri"},
        {"format": "full"},
    ):
        with pytest.raises(BadRequest):
            parse_query(params, Version.V2, 100)


def test_limit_zero_means_server_maximum():
    assert parse_query({"limit": "0"}, Version.V2, 250).limit == 250
    assert parse_query({"limit": "1000"}, Version.V2, 250).limit == 250


def test_since_until_parse_as_instants():
    q = parse_query({"since": "2026-11-28T10:00:00+01:00"}, Version.V2, 10)
    assert q.since == datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert q.since - timedelta(hours=1) < q.since


@pytest.mark.parametrize(
    "body",
    [
        b"123456789012345678901",
        b"[1, -9223372036854775809]",
        b'{"score": {"raw":\n 9223372036854775808}}',
        b'{"a": "51e8722", "b": [0,99999999999999999999]}',
    ],
)
def test_json_refuses_integers_beyond_64_bits(body):
    with pytest.raises(UnrepresentableNumber):
        loads(body)


def test_json_keeps_64_bit_integers_and_hex_ids():
    body = b'{"id": "d1fe09f-0af4-48d2-9752-4d6af51e8722", "n": [9223372036854775807, -9223372036854775808]}'
    assert loads(body) == {
        "id": "d1fe09f-0af4-48d2-9752-4d6af51e8722",
        "n": [9223372036854775807, -9223372036854775808],
    }


def test_the_validator_remembers_only_what_it_found_valid_and_only_so_much():
    validator = validator_for(Version.V2)
    course = {"id": "https://courses.example.no/remembered", "definition": {"name": {"nb": "Kurs"}}}
    validator.activity(course, "statement.object")
    validator.activity(dict(course), "statement.object")  # known now
    wrong_tag = {**course, "definition": {"name": {"not a tag": "Kurs"}}}
    for _ in range(2):
        with pytest.raises(BadRequest, match="not an RFC 5646 language tag"):
            validator.activity(wrong_tag, "statement.object")
    # What is a valid verb is not thereby a valid activity.
    verb = {"id": "https://verbs.example.no/read", "display": {"nb": "leste"}}
    validator.verb(verb, "statement.verb")
    with pytest.raises(BadRequest, match=r"statement\.object\.display"):
        validator.activity(verb, "statement.object")
    for n in range(5000):
        validator.activity({"id": f"https://courses.example.no/many/{n}"}, "statement.object")
    assert len(validator._valid) <= 4096
