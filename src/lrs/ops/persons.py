"""A person's data under GDPR: a copy of everything the store holds about them (Article 15)
and its erasure (Article 17), each one audited transaction.

Erasure removes the statements that are the person's own (they are the actor, or a member
of the actor Group) and redacts those that only mention them (``xapi.persons.redact``),
deletes their documents, cohort memberships and the attachments nothing else declares, and
takes it all out of the rollups. It runs in one REPEATABLE READ snapshot taken under the
fold lock: a statement of theirs committed meanwhile is not in the snapshot, so it is
neither half erased nor lost; it is stored after the erasure (erase again to remove it).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from zipfile import ZIP_DEFLATED, ZipFile

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import reads as analytics_reads
from lrs.analytics import writes as analytics_writes
from lrs.analytics.rollup import HourKey, LearnerKey, contributions, per_learner
from lrs.config import Settings, StoreSettings, store_settings
from lrs.ops import removal
from lrs.ops.caller import store_pseudonym
from lrs.ops.forwarding import matches
from lrs.ops.stores import store_named
from lrs.store import attachments as attachment_store
from lrs.store import audit
from lrs.store import cohorts as cohort_store
from lrs.store import documents as document_store
from lrs.store import forwarding as forward_store
from lrs.store import statements as statement_store
from lrs.store.database import Database
from lrs.store.database import now as db_now
from lrs.store.statements import Held
from lrs.store.stores import Store
from lrs.xapi.errors import BadRequest
from lrs.xapi.persons import ROLES, Person, is_theirs, redact, roles
from lrs.xapi.timestamps import format_timestamp
from lrs.xapi.validate import validator_for
from lrs.xapi.versions import Version

# Spooled in memory up to this size, then on disk: a copy holds attachments of any size.
_SPOOL_BYTES = 16 * 1024 * 1024


def person_of(agents: list[dict[str, Any]]) -> Person:
    """The person the identifiers name; 400 unless at least one identifies an agent."""
    if not agents:
        raise BadRequest("agents: give at least one Agent with an mbox, mbox_sha1sum, openid or account")
    check = validator_for(Version.V2)
    for n, agent in enumerate(agents):
        check.agent(agent, f"agents[{n}]")
    person = Person.of(agents)
    if not person.keys:
        raise BadRequest("agents: none has an mbox, mbox_sha1sum, openid or account")
    return person


def _in_store(person: Person, store: Store, own: StoreSettings) -> Person:
    """In a pseudonymising store, the person is found under their pseudonyms."""
    pseudonym = store_pseudonym(own, store.pseudonym_secret)
    return person if pseudonym is None else person.also_as(pseudonym)


def _rollup_keys(found: Found, person: Person, own: StoreSettings) -> tuple[list[HourKey], list[LearnerKey]]:
    """The rollup rows that hold the person's figures: those their own statements (not
    voided) contribute to, under their identifiers."""
    rows = [
        row
        for h in found.theirs
        if not h.voided
        for row in contributions(h.statement, own)
        if row.learner in person.keys
    ]
    return sorted({row.key for row in rows}), sorted({per_learner(row) for row in rows})


@dataclass
class Found:
    """The statements that concern a person, sorted by what happens to them on erasure."""

    theirs: list[Held] = field(default_factory=list)  # erased whole
    mentioning: list[Held] = field(default_factory=list)  # redacted
    by_role: Counter[str] = field(default_factory=Counter)

    @property
    def concerned(self) -> list[Held]:
        return sorted(self.theirs + self.mentioning, key=lambda h: h.seq)


async def _find(conn: AsyncConnection, store_id: int, person: Person) -> Found:
    found = Found()
    for held in await statement_store.mentioning(conn, store_id, sorted(person.keys)):
        # Found through the index but naming them nowhere: it refers to one of theirs.
        # It stays as it is; only its index rows under their identifiers go.
        has = roles(held.statement, person)
        if not has:
            continue
        found.by_role.update(has)
        (found.theirs if is_theirs(has) else found.mentioning).append(held)
    return found


# --- erasure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    """A forwarding target that may hold copies: the controller passes the request on."""

    rule: str
    endpoint: str
    statements: int


@dataclass(frozen=True)
class Receipt:
    """What an erasure removed (or, in a dry run, would remove). It names no identifier of
    the person, so it can be kept in the audit trail."""

    store: str
    dry_run: bool
    at: datetime
    asked_by: str
    statements_erased: int
    statements_redacted: int
    by_role: dict[str, int]
    documents: int
    attachments: int
    rollup_rows: int
    cohort_memberships: int
    forwarded_to: list[Forwarded]

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "dry_run": self.dry_run,
            "at": format_timestamp(self.at),
            "asked_by": self.asked_by,
            "statements": {
                "erased": self.statements_erased,
                "redacted": self.statements_redacted,
                "by_role": self.by_role,
            },
            "documents": self.documents,
            "attachments": self.attachments,
            "rollup_rows": self.rollup_rows,
            "cohort_memberships": self.cohort_memberships,
            "forwarded_to": [
                {"rule": f.rule, "endpoint": f.endpoint, "statements": f.statements}
                for f in self.forwarded_to
            ],
        }


async def erase(
    db: Database, settings: Settings, actor: str, store: str, agents: list[dict[str, Any]], *, dry_run: bool
) -> Receipt:
    """Erase a person from a store (or, with ``dry_run``, report what that would remove and
    change nothing)."""
    given = person_of(agents)

    async def work(conn: AsyncConnection) -> Receipt:
        target = await store_named(conn, store)
        own = store_settings(target.settings)
        person = _in_store(given, target, own)
        found = await _find(conn, target.id, person)
        keys = sorted(person.keys)
        orphans = await removal.orphaned(conn, target.id, found.theirs)
        receipt = Receipt(
            store=target.name,
            dry_run=dry_run,
            at=await db_now(conn),
            asked_by=actor,
            statements_erased=len(found.theirs),
            statements_redacted=len(found.mentioning),
            by_role={role: found.by_role[role] for role in ROLES if found.by_role[role]},
            documents=await document_store.count_of_agents(conn, target.id, keys),
            attachments=len(orphans),
            rollup_rows=await analytics_reads.learner_rows(
                conn, target.id, *_rollup_keys(found, person, own)
            ),
            cohort_memberships=len(await cohort_store.memberships_of(conn, target.id, keys)),
            forwarded_to=await _forwarded(conn, target.id, found.concerned),
        )
        if dry_run:
            return receipt
        await removal.delete(conn, target.id, found.theirs)
        await statement_store.replace_content(
            conn, target.id, [(h.seq, redact(h.statement, person)) for h in found.mentioning]
        )
        await statement_store.unindex_agents(conn, target.id, keys)
        await attachment_store.delete(conn, target.id, orphans)
        await document_store.delete_of_agents(conn, target.id, keys)
        await cohort_store.forget_learners(conn, target.id, keys)
        counted = [h.statement for h in found.concerned if not h.voided]
        await analytics_writes.take_out(conn, target.id, counted, own, own.zone(settings.default_timezone))
        await audit.record(conn, actor, "person.erase", target.name, None, receipt.as_dict())
        return receipt

    if dry_run:
        return await db.read(work)
    return await db.write(work, repeatable_read=True, after_lock=analytics_writes.FOLD_LOCK)


async def _forwarded(conn: AsyncConnection, store_id: int, held: list[Held]) -> list[Forwarded]:
    """The store's forwarding rules that sent (or were sending) any of these statements: a
    statement stored after the rule was made, that its filter takes, and that no longer
    waits in its outbox or dead letters."""
    if not held:
        return []
    waiting = await forward_store.waiting(conn, store_id, [h.seq for h in held])
    out = []
    for rule in await forward_store.of_store(conn, store_id):
        sent = sum(
            1
            for h in held
            if h.stored >= rule.created
            and (rule.id, h.seq) not in waiting
            and matches(rule.filter, h.statement, h.credential)
        )
        if sent:
            out.append(Forwarded(rule.name, rule.endpoint, sent))
    return out


# --- access ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """A person's data as one ZIP archive (in a file the caller closes), with its counts."""

    file: IO[bytes]
    statements: int
    documents: int
    attachments: int
    figures: int
    cohort_memberships: int


async def export(db: Database, actor: str, store: str, agents: list[dict[str, Any]]) -> Copy:
    """Everything the store holds about a person, with a summary in Norwegian and English."""
    given = person_of(agents)
    # Handed to the caller open, to stream and close.
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115

    async def work(conn: AsyncConnection) -> Copy:
        target = await store_named(conn, store)
        own = store_settings(target.settings)
        person = _in_store(given, target, own)
        keys = sorted(person.keys)
        found = await _find(conn, target.id, person)
        concerned = found.concerned
        documents = await document_store.of_agents(conn, target.id, keys)
        _, progress_keys = _rollup_keys(found, person, own)
        figures = await analytics_reads.learner_figures(conn, target.id, progress_keys)
        memberships = await cohort_store.memberships_of(conn, target.id, keys)
        stored = await attachment_store.find(conn, target.id, removal.declared_hashes(concerned))
        at = await db_now(conn)
        with ZipFile(spool, "w", ZIP_DEFLATED) as archive:
            statements = [
                {"roles": sorted(roles(h.statement, person)), "voided": h.voided, "statement": h.statement}
                for h in concerned
            ]
            archive.writestr("statements.json", _json(statements))
            listed = []
            for n, kept in enumerate(documents, start=1):
                name = f"documents/{n}"
                archive.writestr(name, kept.document.content)
                listed.append(
                    {
                        "file": name,
                        "kind": kept.address.kind.name.lower(),
                        "activityId": kept.address.activity_id or None,
                        "registration": kept.address.registration or None,
                        "id": kept.address.doc_id,
                        "contentType": kept.document.content_type,
                        "updated": format_timestamp(kept.document.updated),
                    }
                )
            archive.writestr("documents.json", _json(listed))
            for a in stored:
                with archive.open(f"attachments/{a.sha2}", "w") as out:
                    async for chunk in attachment_store.chunks(conn, target.id, a.sha2):
                        out.write(chunk)
            archive.writestr(
                "attachments.json",
                _json(
                    [
                        {
                            "file": f"attachments/{a.sha2}",
                            "sha2": a.sha2,
                            "contentType": a.content_type,
                            "length": a.length,
                        }
                        for a in stored
                    ]
                ),
            )
            archive.writestr("analytics.json", _json(figures))
            archive.writestr(
                "cohorts.json",
                _json([{"cohort": m.cohort, "from": m.valid_from, "to": m.valid_to} for m in memberships]),
            )
            counts = {
                "statements": len(concerned),
                "documents": len(documents),
                "attachments": len(stored),
                "figures": len(figures),
                "cohort_memberships": len(memberships),
            }
            archive.writestr("LESMEG.txt", summary("nb", target.name, at, counts, found.by_role))
            archive.writestr("README.txt", summary("en", target.name, at, counts, found.by_role))
        await audit.record(
            conn, actor, "person.export", target.name, None, {**counts, "by_role": dict(found.by_role)}
        )
        return Copy(spool, counts["statements"], len(documents), len(stored), len(figures), len(memberships))

    try:
        copy = await db.write(work, repeatable_read=True)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return copy


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


# The archive's summary, in each language it is written in: its lines, then what each role
# is called (see xapi.persons.ROLES).
_SUMMARY = {
    "nb": {
        "title": "Innsyn: kopi av opplysningene læringsregisteret (LRS) har om deg i «{store}»",
        "made": "Laget {at} (UTC).",
        "statements": "{n} læringsutsagn (xAPI-statements) der du er nevnt: statements.json.",
        "role": "{n} der du er {role}",
        "documents": "{n} dokumenter lagret om deg (tilstand og agentprofil): documents.json og documents/.",
        "attachments": "{n} vedlegg til disse utsagnene: attachments.json og attachments/.",
        "figures": "{n} sammendrag per aktivitet (fullføring, poeng, tidsbruk): analytics.json.",
        "cohort_memberships": "{n} medlemskap i målgrupper (enheter, avdelinger): cohorts.json.",
        "closing": "Filene er i JSON-format. Spørsmål om opplysningene rettes til behandlingsansvarlig\n"
        "(kommunen), som også kan rette eller slette dem.",
    },
    "en": {
        "title": "Access request: a copy of what the learning record store (LRS) holds about you"
        " in '{store}'",
        "made": "Made {at} (UTC).",
        "statements": "{n} learning statements (xAPI statements) that mention you: statements.json.",
        "role": "{n} where you are {role}",
        "documents": "{n} documents kept about you (state and agent profile): documents.json and documents/.",
        "attachments": "{n} attachments of those statements: attachments.json and attachments/.",
        "figures": "{n} summaries per activity (completion, score, time spent): analytics.json.",
        "cohort_memberships": "{n} memberships of target groups (units, departments): cohorts.json.",
        "closing": "The files are JSON. Questions about this data go to the controller (the municipality),\n"
        "who can also correct or erase it.",
    },
}
_ROLE_NAMES = {
    "nb": {
        "actor": "den som gjorde det (actor)",
        "group_member": "medlem av gruppen som gjorde det",
        "object": "den det ble gjort noe med (object)",
        "instructor": "instruktør",
        "team": "medlem av teamet",
        "context_agent": "deltaker i konteksten (contextAgents)",
        "context_group": "medlem av en gruppe i konteksten (contextGroups)",
        "substatement": "nevnt i en del-utsagn (SubStatement)",
        "authority": "den som sendte utsagnet (authority)",
    },
    "en": {
        "actor": "the one who did it (actor)",
        "group_member": "a member of the group that did it",
        "object": "the one it was done to (object)",
        "instructor": "instructor",
        "team": "a member of the team",
        "context_agent": "a participant in the context (contextAgents)",
        "context_group": "a member of a context group (contextGroups)",
        "substatement": "mentioned in a SubStatement",
        "authority": "the sender of the statement (authority)",
    },
}


def summary(language: str, store: str, at: datetime, counts: dict[str, int], by_role: Counter[str]) -> str:
    """What an archive holds, for the person reading it, in ``language`` (nb or en)."""
    words, roles_named = _SUMMARY[language], _ROLE_NAMES[language]
    lines = [words["title"].format(store=store), words["made"].format(at=format_timestamp(at)), ""]
    lines.append("- " + words["statements"].format(n=counts["statements"]))
    lines += ["    - " + words["role"].format(n=by_role[r], role=roles_named[r]) for r in ROLES if by_role[r]]
    lines += [
        "- " + words[part].format(n=counts[part])
        for part in ("documents", "attachments", "figures", "cohort_memberships")
    ]
    lines += ["", words["closing"]]
    return "\n".join(lines) + "\n"
