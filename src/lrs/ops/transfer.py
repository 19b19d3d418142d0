"""Moving a store's data as files: export (JSON Lines, streamed page by page) and import.

The format, one JSON value per line:

- A plain export is the store's statements, one per line, exactly as stored (voided ones
  included), in the order they were stored: any tool that reads JSON Lines of xAPI
  statements reads it.
- With documents or attachments, the first line is a header ``{"lrs:export": {...}}``, then
  come attachment parts ``{"lrs:attachment": {...}}`` (one line per stored 1 MiB chunk,
  base64), canonical activity definitions ``{"lrs:activity": {...}}`` and documents
  ``{"lrs:document": {...}}`` (State, Activity Profile and Agent Profile, content in base64),
  and then the statements. A statement never has a property named ``lrs:...``, so every line
  says what it is.

Import validates every statement as ``POST /statements`` does (by the statement's own
``version``), keeps its ``stored`` and ``authority`` when it has them (a restore), and
stores it in batches of ``batch`` statements, each one transaction: all of a batch or none
of it. A statement whose id the store already holds with the same content is a no-op, so an
import can be run again after an interruption.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import multiprocessing
import multiprocessing.process
import pickle
import re
import tempfile
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from multiprocessing.connection import Connection
from typing import IO, Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.gctuning import COMMAND_YOUNG, collect_less
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.ops.stores import store_named
from lrs.store import activities as activity_store
from lrs.store import attachments as attachment_store
from lrs.store import audit
from lrs.store import documents as document_store
from lrs.store import statements as statement_store
from lrs.store.credentials import Credential, default_authority
from lrs.store.database import Database
from lrs.store.db import create_engine
from lrs.store.stores import Store
from lrs.xapi.documents import Address, Kind
from lrs.xapi.errors import BadRequest, Conflict, XAPIError
from lrs.xapi.pseudonyms import Pseudonym
from lrs.xapi.statements import Prepared, prepare
from lrs.xapi.timestamps import format_timestamp, parse_timestamp
from lrs.xapi.versions import Version

FORMAT = 1
HEADER, ATTACHMENT, ACTIVITY, DOCUMENT = "lrs:export", "lrs:attachment", "lrs:activity", "lrs:document"
SPAN = 5000  # seq numbers per read while exporting (at most as many statements)
BATCH = 1000  # statements per transaction while importing
YIELD_EVERY = 4  # lines read between turns of the batch being written
AHEAD = 2  # whole batches parsed ahead of those being written
WRITERS = 2  # batches written at once (see _import_here before changing it)
KINDS = {Kind.STATE: "state", Kind.ACTIVITY_PROFILE: "activity_profile", Kind.AGENT_PROFILE: "agent_profile"}
OnError = Literal["skip", "stop"]


@dataclass(frozen=True)
class ExportRequest:
    since: datetime | None = None  # stored after
    until: datetime | None = None  # stored at or before
    documents: bool = False
    attachments: bool = False


def _line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


async def export(db: Database, actor: str, store_name: str, ask: ExportRequest) -> AsyncIterator[bytes]:
    """The store's data as JSON Lines, a page at a time (memory stays flat whatever the size).

    Statements stored up to the moment the export starts are in it; later ones are not, so
    a statement still being written is never half in. The export is audited as it starts.
    """

    async def begin(conn: AsyncConnection) -> tuple[Store, datetime]:
        store = await store_named(conn, store_name)
        through = await statement_store.consistent_through(conn)
        until = through if ask.until is None else min(ask.until, through)
        details = {
            "since": format_timestamp(ask.since) if ask.since else None,
            "until": format_timestamp(until),
            "documents": ask.documents,
            "attachments": ask.attachments,
        }
        await audit.record(conn, actor, "store.export", store.name, None, details)
        return store, until

    store, until = await db.write(begin)
    if ask.documents or ask.attachments:
        yield _line(
            {
                HEADER: {
                    "format": FORMAT,
                    "store": store.name,
                    "until": format_timestamp(until),
                    "since": format_timestamp(ask.since) if ask.since else None,
                    "documents": ask.documents,
                    "attachments": ask.attachments,
                }
            }
        )
    if ask.attachments:
        async for chunk in _attachments(db, store.id):
            yield chunk
    if ask.documents:
        async for chunk in _documents(db, store.id):
            yield chunk
    bounds = await db.read(partial(statement_store.seq_bounds, store_id=store.id, since=ask.since))
    if bounds is None:
        return
    first, last = bounds

    def read(after: int) -> asyncio.Task[bytes]:
        page = partial(
            statement_store.export_range,
            store_id=store.id,
            after_seq=after,
            through_seq=after + SPAN,
            since=ask.since,
            until=until,
        )
        return asyncio.create_task(db.read(page))

    # Two ranges are read at once on two connections (PostgreSQL turns stored JSON into text
    # on two cores) while the one before them is written out; in order, so memory holds at
    # most three ranges.
    starts = iter(range(first - 1, last, SPAN))
    reading = [read(after) for after in itertools.islice(starts, 2)]
    try:
        while reading:
            lines = await reading.pop(0)
            after = next(starts, None)
            if after is not None:
                reading.append(read(after))
            if lines:
                yield lines
    finally:
        for task in reading:
            task.cancel()
        for task in reading:
            with contextlib.suppress(BaseException):
                await task


async def _attachments(db: Database, store_id: int) -> AsyncIterator[bytes]:
    after = ""
    while True:
        found = await db.read(
            partial(attachment_store.export_page, store_id=store_id, after=after, limit=100)
        )
        if not found:
            return
        after = found[-1].sha2
        for a in found:
            async with db.engine.connect() as conn:
                part = 0
                async for data in attachment_store.chunks(conn, store_id, a.sha2):
                    record = {
                        "sha2": a.sha2,
                        "contentType": a.content_type,
                        "length": a.length,
                        "part": part,
                        "data": base64.b64encode(data).decode(),
                    }
                    yield _line({ATTACHMENT: record})
                    part += 1


async def _documents(db: Database, store_id: int) -> AsyncIterator[bytes]:
    after: uuid.UUID | None = None
    while True:
        rows = await db.read(partial(activity_store.export_page, store_id=store_id, after=after, limit=1000))
        if not rows:
            break
        after = rows[-1][0]
        yield b"".join(_line({ACTIVITY: {"id": a, "definition": d}}) for _, a, d in rows)
    last: tuple[bytes, str] | None = None
    while True:
        kept = await db.read(partial(document_store.export_page, store_id=store_id, after=last, limit=200))
        if not kept:
            return
        last = (kept[-1].owner_hash, kept[-1].address.doc_id or "")
        yield b"".join(
            _line(
                {
                    DOCUMENT: {
                        "kind": KINDS[k.address.kind],
                        "activityId": k.address.activity_id,
                        "agent": k.address.agent_key,
                        "registration": k.address.registration,
                        "id": k.address.doc_id,
                        "contentType": k.document.content_type,
                        "etag": k.document.etag,
                        "updated": format_timestamp(k.document.updated),
                        "content": base64.b64encode(k.document.content).decode(),
                    }
                }
            )
            for k in kept
        )


# --- import -----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did. ``errors``: (line number, message) of the lines it skipped or
    stopped at."""

    lines: int = 0
    statements: int = 0  # accepted: stored now, or already there with the same content
    documents: int = 0
    attachments: int = 0
    activities: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "statements": self.statements,
            "documents": self.documents,
            "attachments": self.attachments,
            "activities": self.activities,
            "errors": [{"line": n, "message": m} for n, m in self.errors],
            "stopped": self.stopped,
        }


class ImportBroken(Exception):
    """One of an import's processes ended in the middle (killed, or out of memory)."""


class _Stop(Exception):
    """An import that stops at its first bad line."""


class _Behind(Exception):
    """A batch after one that failed: it is not written."""


@dataclass
class _Batch:
    """Lines an import writes in one transaction, and its place in the file's order."""

    lines: list[tuple[int, Prepared]]
    seqs: list[int]
    touched: set[uuid.UUID]  # its statements' ids, and those they void or refer to
    previous: asyncio.Future[bool] | None  # whether the batch before it committed
    touches_previous: bool
    committed: asyncio.Future[bool]  # whether it did

    @classmethod
    def after(cls, before: _Batch | None, lines: list[tuple[int, Prepared]], seqs: list[int]) -> _Batch:
        touched = {p.id for _, p in lines} | {p.refers_to for _, p in lines if p.refers_to is not None}
        committed = asyncio.get_running_loop().create_future()
        if before is None:
            return cls(lines, seqs, touched, None, False, committed)
        touches = not touched.isdisjoint(before.touched)
        return cls(lines, seqs, touched, before.committed, touches, committed)


def importer(store: Store, key: str, authority: dict[str, Any] | None, home_page: str) -> Caller:
    """Who an import writes as: recorded as the statements' credential, and their authority
    when a statement has none of its own."""
    return Caller(
        Credential(
            store_id=store.id,
            key=key,
            secret_hash=b"",
            label="import",
            scopes=frozenset({"statements/write"}),
            authority=authority or default_authority(key, "import", home_page),
            created=datetime.min,
            expires=None,
            revoked=None,
            store_settings=store.settings,
            store_pseudonym_secret=store.pseudonym_secret,
        )
    )


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Lines of a byte stream, whatever the chunk boundaries."""
    rest = b""
    async for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line
    if rest:
        yield rest


def _version(statement: dict[str, Any]) -> Version:
    version = statement.get("version")
    return Version.V1 if isinstance(version, str) and version.startswith("1.") else Version.V2


async def import_lines(
    db: Database,
    settings: Settings,
    actor: str,
    store_name: str,
    chunks: AsyncIterable[bytes],
    *,
    authority: dict[str, Any] | None = None,
    on_error: OnError = "stop",
    batch: int = BATCH,
    jobs: int = 1,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Read what ``export`` writes (or plain JSON Lines of statements) into the store.

    ``jobs`` above 1: that many processes parse, validate and write the batches (``_Team``)."""
    store = await db.read(lambda c: store_named(c, store_name))
    who = importer(store, actor, authority, settings.authority_home_page)
    report = ImportReport()
    parts: dict[str, tuple[IO[bytes], int]] = {}  # attachment content being reassembled
    # Rollups kept in the write transaction lock rows that every batch updates: a batch
    # holding them while it waits for the one before it would wait forever.
    together = not (settings.analytics_rollups and who.settings.rollups_in_transaction)

    def bad(n: int, message: str) -> None:
        report.errors.append((n, message))
        if on_error == "stop":
            report.stopped = True
            raise _Stop

    async def record(n: int, line: _Record) -> None:
        try:
            await _record(db, store, who, line.value, line.tag, parts, report, n)
        except XAPIError as exc:
            bad(n, exc.message)

    try:
        if jobs > 1:
            team = _Team(db, settings, store, who, jobs, on_error, together, report, progress)
            await team.run(chunks, batch, record)
        else:
            await _import_here(db, settings, who, chunks, batch, together, report, progress, bad, record)
    finally:
        for file, _ in parts.values():
            file.close()

    async def note(conn: AsyncConnection) -> None:
        details = {k: v for k, v in report.as_dict().items() if k != "errors"}
        details["errors"] = len(report.errors)
        await audit.record(conn, actor, "store.import", store.name, None, details)

    await db.write(note)
    return report


async def _store_batch(
    db: Database,
    settings: Settings,
    who: Caller,
    lines: list[tuple[int, Prepared]],
    seqs: list[int],
    turn: Callable[[], Awaitable[None]],
    conflict: Callable[[int, str], None],
) -> int:
    """Store one batch in one transaction, ``turn`` awaited just before its commit; a line
    that clashes with a stored statement is left out and passed to ``conflict`` (which raises
    to stop). How many statements it accepted."""
    written = lines
    while written:
        try:
            await statement_ops.write(
                db, settings, who, [p for _, p in written], seqs=seqs, before_commit=turn
            )
        except Conflict as exc:
            lines_of = {p.id: n for n, p in written}
            clash = next((i for i in lines_of if str(i) in exc.message), None)
            if clash is None:
                raise
            written = [(n, p) for n, p in written if p.id != clash]
            conflict(lines_of[clash], exc.message)
            continue
        return len(written)
    return 0


async def _import_here(
    db: Database,
    settings: Settings,
    who: Caller,
    chunks: AsyncIterable[bytes],
    batch: int,
    together: bool,
    report: ImportReport,
    progress: Callable[[ImportReport], None] | None,
    bad: Callable[[int, str], None],
    record: Callable[[int, _Record], Awaitable[None]],
) -> None:
    """An import whose lines this process parses, validates and writes (``jobs`` 1)."""
    pending: list[tuple[int, Prepared]] = []

    async def write(batch: _Batch) -> None:
        """One batch in one transaction, committed after the batch before it."""

        async def turn() -> None:
            if batch.previous is not None and not await batch.previous:
                raise _Behind

        accepted = await _store_batch(db, settings, who, batch.lines, batch.seqs, turn, bad)
        report.statements += accepted  # not `+= await`: that reads the count before the write

    # WRITERS tasks write the batches, each in its own transaction, while the lines after
    # them are parsed and validated: PostgreSQL and Python work at once, and one batch's
    # round trips wait while another's are under way. The batches keep the file's order:
    # their seqs are reserved in that order, each commits only after the one before it (or
    # rolls back when that one failed), and one that touches a statement of the batch before
    # it (the same id, a voiding or a StatementRef) starts only once that one has ended. With
    # two writers, the batch before is the only one that may still be open when a batch
    # starts: the one before that ended first, since it commits first.
    # Up to AHEAD whole batches wait, so that one slow write does not stall the parsing.
    queue: asyncio.Queue[_Batch | None] = asyncio.Queue(AHEAD)
    failed: list[Exception] = []  # a writer's failure, raised again by the parser

    async def writer() -> None:
        while (batch := await queue.get()) is not None:
            try:
                if failed:
                    raise _Behind  # what comes after a failed batch is not written
                if batch.previous is not None and (not together or batch.touches_previous):
                    await asyncio.wait([batch.previous])
                await write(batch)
            except _Behind:
                batch.committed.set_result(False)
            except Exception as exc:
                failed.append(exc)
                batch.committed.set_result(False)
            else:
                batch.committed.set_result(True)
            if progress is not None:
                progress(report)

    writing = [asyncio.create_task(writer()) for _ in range(WRITERS)]
    last: _Batch | None = None

    async def flush() -> None:
        nonlocal last
        if pending:
            seqs = await db.write(lambda c: statement_store.reserve_seqs(c, len(pending)))
            last = _Batch.after(last, pending.copy(), seqs)
            await queue.put(last)
            pending.clear()
            ids.clear()
        if failed:
            raise failed[0]

    async def finish() -> None:
        for _ in writing:
            await queue.put(None)
        await asyncio.gather(*writing)
        if failed:
            raise failed[0]

    ids: set[uuid.UUID] = set()
    authority, pseudonym = who.authority, who.pseudonym
    try:
        n = 0
        async for raw in _lines(chunks):
            n += 1
            report.lines = n
            if n % YIELD_EVERY == 0:
                # Reading a file never suspends: without this the batch being written would
                # wait for each of its round trips until the next batch is whole.
                await asyncio.sleep(0)
            line = _read_line(raw, n, authority, pseudonym)
            if line is None:
                continue
            if isinstance(line, _Bad):
                bad(n, line.message)
                continue
            if isinstance(line, _Record):
                await record(n, line)
                continue
            if line.id in ids:
                await flush()  # the same id twice in a batch would reject the batch
            pending.append((n, line))
            ids.add(line.id)
            if len(pending) >= batch:
                await flush()
        await flush()
        await finish()
    except _Stop:
        # Stopped at a bad line: the batches already queued are before it and are written
        # (unless the stop came from one of them).
        with contextlib.suppress(_Stop):
            await finish()
    finally:
        for task in writing:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


@dataclass(frozen=True)
class _Bad:
    """A line that is not a statement this LRS takes, and why."""

    message: str


@dataclass(frozen=True)
class _Record:
    """A line of the export's own (the header, an attachment part, a definition, a document)."""

    tag: str
    value: dict[str, Any]


# What one line is: a statement ready to store, a bad line, a record, or (None) a blank line.
_Line = Prepared | _Bad | _Record | None

# A line that may be a record of the export's own: the importing process reads those itself.
_RECORD_LIKE = re.compile(rb'\s*\{\s*"lrs:')


def _read_line(raw: bytes, n: int, authority: dict[str, Any], pseudonym: Pseudonym | None) -> _Line:
    if not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _Bad(f"line {n}: not JSON ({exc})")
    if not isinstance(value, dict):
        return _Bad(f"line {n}: not a JSON object")
    # A record of the export's own is its one key.
    if len(value) == 1 and (tag := next(iter(value))).startswith("lrs:"):
        return _Record(tag, value)
    path = f"line {n}"
    stored = value.get("stored")
    kept = parse_timestamp(stored) if isinstance(stored, str) else None
    try:
        if stored is not None and kept is None:
            raise BadRequest(f"{path}.stored: not an ISO 8601 timestamp")
        given = value.get("authority", authority)
        prepared = prepare(value, _version(value), given, path, pseudonym=pseudonym)
    except XAPIError as exc:
        return _Bad(exc.message)
    if kept is None:
        prepared.keys = statement_store.keys_of(prepared)
        return prepared
    return statement_store.stamped_ahead(prepared, kept)


# --- an import in processes of its own -----------------------------------------------------------


@dataclass
class _Chunk:
    """A batch of lines given to a member of the team, while it is under way."""

    member: int
    touched: set[bytes] | None = None  # its statements' ids and those they void or refer to
    started: bool = False
    asking: bool = False  # waiting to hear whether it may commit


@dataclass(frozen=True)
class _Done:
    """What a member did with a chunk. ``committed``: whether the chunk after it may commit."""

    statements: int
    errors: list[tuple[int, str]]
    stopped: bool
    committed: bool


class _Team:
    """An import whose batches ``jobs`` processes parse, validate and write, each over its own
    connection; this process reads the file, hands out the lines a batch at a time with seqs
    reserved in the file's order, and decides who may go on.

    When the other processes only parsed and validated, and passed each statement back to
    be written here, this process alone took about 30 µs of CPU per statement (the pipe,
    unpickling, and the write's own Python); now it takes about 8, and the members a little
    more than before for their writes.

    The order stays the file's, as when one process writes: a chunk commits only after the
    one before it committed (it rolls back when that one did not), and a chunk starts
    writing only once every chunk before it still under way has said what it touches
    (statement ids, and those it voids or refers to) and shares none of them, so that its
    lookups see what they must and no two open transactions wait on each other's rows.

    A member says ``ready`` with what its chunk touches, is told ``start``, asks ``commit?``
    before its commit and is told ``go`` or ``abort``, and ends with ``done`` (or ``failed``
    with the exception)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        store: Store,
        who: Caller,
        jobs: int,
        on_error: OnError,
        together: bool,
        report: ImportReport,
        progress: Callable[[ImportReport], None] | None,
    ) -> None:
        self.db, self.report, self.progress, self.together = db, report, progress, together
        self.chunks: dict[int, _Chunk] = {}
        self.results: dict[int, _Done] = {}  # of the chunks that ended
        self.next = 0
        self.failed: BaseException | None = None
        self.stopped = False
        self.closing = False  # members leaving now is no failure
        self.idle: asyncio.Queue[int] = asyncio.Queue()
        self.all_ended = asyncio.Event()
        self.all_ended.set()
        context = multiprocessing.get_context("spawn")  # not fork: this process has threads and sockets
        url = db.engine.url.render_as_string(hide_password=False)
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(jobs):
            mine, theirs = context.Pipe()
            args = (theirs, url, settings, store, who.key, who.authority, on_error)
            process = context.Process(target=_member, args=args, daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(mine)
            self.processes.append(process)

    async def run(
        self,
        chunks: AsyncIterable[bytes],
        batch: int,
        record: Callable[[int, _Record], Awaitable[None]],
    ) -> None:
        """Read the stream and see every batch of it through. Records of the export's own
        are read here, in the file's place, since they are written over this process's
        connections."""
        loop = asyncio.get_running_loop()
        for i, pipe in enumerate(self.pipes):
            loop.add_reader(pipe.fileno(), self._receive, i)
        lines: list[bytes] = []
        first = 0
        try:
            n = 0
            async for raw in _lines(chunks):
                n += 1
                self.report.lines = n
                if _RECORD_LIKE.match(raw):
                    line = _read_line(raw, n, {}, None)
                    if isinstance(line, _Record):
                        await record(n, line)
                        continue
                if not lines:
                    first = n
                lines.append(raw)
                if len(lines) == batch:
                    await self._give(first, lines)
                    lines = []
                if self.stopped:
                    break
            if lines and not self.stopped:
                await self._give(first, lines)
            await self._finish()
        except _Stop:
            # A record stopped the import: the chunks given out are before it, and are written.
            await self._finish()
        finally:
            for pipe in self.pipes:
                loop.remove_reader(pipe.fileno())
            self._close()

    async def _give(self, first: int, lines: list[bytes]) -> None:
        """Reserve the chunk's seqs and give it to the first member free."""
        if self.failed is not None:
            raise self.failed
        seqs = await self.db.write(lambda c: statement_store.reserve_seqs(c, len(lines)))
        member = await self.idle.get()
        if self.failed is not None:
            raise self.failed
        number = self.next
        self.next += 1
        self.chunks[number] = _Chunk(member)
        self.all_ended.clear()
        self.pipes[member].send(("chunk", number, first, lines, seqs))

    async def _finish(self) -> None:
        await self.all_ended.wait()
        self.closing = True
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # a member that is gone already
                pipe.send(None)
        # The chunks' errors in the file's order, up to the first chunk that stopped.
        for number in sorted(self.results):
            done = self.results[number]
            self.report.errors.extend(done.errors)
            if done.stopped:
                self.report.stopped = True
                break
        self.report.errors.sort()
        if self.report.stopped and self.report.errors:
            # Lines read ahead of the stop were never looked at, as when one process reads.
            self.report.lines = min(self.report.lines, self.report.errors[-1][0])
        if self.failed is not None:
            raise self.failed

    def _close(self) -> None:
        """End the members: one still writing reads the end of its pipe, and rolls back."""
        self.closing = True
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()

    def _receive(self, member: int) -> None:
        try:
            message = self.pipes[member].recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipes[member].fileno())
            if self.closing:
                return
            message = ("gone", None)
        kind, number, *rest = message
        if kind == "hello":
            self.idle.put_nowait(member)
        elif kind == "ready":
            (touched,) = rest
            self.chunks[number].touched = {touched[i : i + 16] for i in range(0, len(touched), 16)}
            self._start()
        elif kind == "commit?":
            self.chunks[number].asking = True
            self._answer(number)
        elif kind == "done":
            (done,) = rest
            self._end(number, done)
        elif kind == "failed":
            (exc,) = rest
            self.failed = self.failed or exc
            self._end(number, _Done(0, [], False, False))
        else:  # the process is gone: its chunk (if any) can never commit
            self.failed = self.failed or ImportBroken(
                "an import process ended unexpectedly; what is stored is the file's beginning, in"
                " order, and the same import run again goes on from there"
            )
            mine = [n for n, chunk in self.chunks.items() if chunk.member == member]
            for n in mine:
                self._end(n, _Done(0, [], False, False))
            if not mine:
                self.idle.put_nowait(member)  # so that _give wakes up and raises

    def _end(self, number: int, done: _Done) -> None:
        member = self.chunks.pop(number).member
        self.results[number] = done
        self.report.statements += done.statements
        self.stopped = self.stopped or done.stopped
        self.idle.put_nowait(member)
        if not self.chunks:
            self.all_ended.set()
        if number + 1 in self.chunks:
            self._answer(number + 1)
        self._start()
        if self.progress is not None:
            self.progress(self.report)

    def _answer(self, number: int) -> None:
        """Tell a chunk waiting to commit whether it may, once the chunk before it ended."""
        chunk = self.chunks[number]
        if not chunk.asking or number - 1 in self.chunks:
            return
        chunk.asking = False
        go = (number == 0 or self.results[number - 1].committed) and self.failed is None
        self.pipes[chunk.member].send("go" if go else "abort")

    def _start(self) -> None:
        open_before: list[_Chunk] = []
        for number in sorted(self.chunks):
            chunk = self.chunks[number]
            if chunk.touched is not None and not chunk.started:
                clear = all(
                    c.touched is not None and self.together and chunk.touched.isdisjoint(c.touched)
                    for c in open_before
                )
                if clear:
                    chunk.started = True
                    self.pipes[chunk.member].send("start")
            open_before.append(chunk)


def _member(
    pipe: Connection,
    url: str,
    settings: Settings,
    store: Store,
    key: str,
    authority: dict[str, Any],
    on_error: OnError,
) -> None:
    """A member of an import's team, in a process of its own (see ``_Team``)."""
    collect_less(COMMAND_YOUNG)
    who = importer(store, key, authority, settings.authority_home_page)
    asyncio.run(_membership(pipe, url, settings, who, on_error))


async def _membership(pipe: Connection, url: str, settings: Settings, who: Caller, on_error: OnError) -> None:
    engine = create_engine(url, pool_size=1)
    db = Database(engine)
    try:
        pipe.send(("hello", None))
        while (message := pipe.recv()) is not None:
            _, number, first, lines, seqs = message
            try:
                done = await _chunk(db, settings, who, pipe, number, first, lines, seqs, on_error)
            except Exception as exc:
                pipe.send(("failed", number, _picklable(exc)))
            else:
                pipe.send(("done", number, done))
    except (EOFError, OSError):
        pass  # the importing process is gone; an open transaction was rolled back
    finally:
        await engine.dispose()


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


async def _chunk(
    db: Database,
    settings: Settings,
    who: Caller,
    pipe: Connection,
    number: int,
    first: int,
    lines: list[bytes],
    seqs: list[int],
    on_error: OnError,
) -> _Done:
    """In a member: parse and validate a chunk, then write it when told to."""
    statements: list[tuple[int, Prepared]] = []
    errors: list[tuple[int, str]] = []
    for n, raw in enumerate(lines, first):
        line = _read_line(raw, n, who.authority, who.pseudonym)
        if line is None:
            continue
        if isinstance(line, Prepared):
            statements.append((n, line))
            continue
        # A record the importing process did not take for one (its key written with an
        # escape) is not read in the middle of the statements.
        errors.append((n, line.message if isinstance(line, _Bad) else f"line {n}: not a statement"))
        if on_error == "stop":
            return _Done(0, errors, True, False)
    touched = b"".join(u.bytes for _, p in statements for u in (p.id, p.voids, p.refers_to) if u is not None)
    pipe.send(("ready", number, touched))
    if pipe.recv() != "start":
        raise RuntimeError("an import process was told something out of turn")
    allowed: bool | None = None

    async def turn() -> None:
        nonlocal allowed
        if allowed is None:
            pipe.send(("commit?", number, None))
            allowed = pipe.recv() == "go"
        if not allowed:
            raise _Behind

    def conflict(n: int, message: str) -> None:
        errors.append((n, message))
        if on_error == "stop":
            raise _Stop

    accepted = 0
    try:
        # The same id twice in a transaction would reject it: such a chunk is written as
        # more than one batch, in order, each with the next of its seqs.
        for part in _without_repeats(statements) if statements else [[]]:
            if part:
                accepted += await _store_batch(db, settings, who, part, seqs[: len(part)], turn, conflict)
                seqs = seqs[len(part) :]
            else:
                await turn()  # nothing to write: it still passes the turn on
    except _Behind:
        return _Done(accepted, errors, False, False)
    except _Stop:
        return _Done(accepted, errors, True, False)
    return _Done(accepted, errors, False, True)


def _without_repeats(lines: list[tuple[int, Prepared]]) -> Iterator[list[tuple[int, Prepared]]]:
    """The lines in runs in which no statement id comes twice."""
    run: list[tuple[int, Prepared]] = []
    ids: set[uuid.UUID] = set()
    for n, p in lines:
        if p.id in ids:
            yield run
            run, ids = [], set()
        run.append((n, p))
        ids.add(p.id)
    yield run


async def _record(
    db: Database,
    store: Store,
    who: Caller,
    value: dict[str, Any],
    tag: str,
    parts: dict[str, tuple[IO[bytes], int]],
    report: ImportReport,
    n: int,
) -> None:
    body = value[tag]
    if not isinstance(body, dict):
        raise BadRequest(f"line {n}.{tag}: not a JSON object")
    try:
        if tag == HEADER:
            if body.get("format") != FORMAT:
                raise BadRequest(f"line {n}.{tag}.format: this LRS reads format {FORMAT}")
        elif tag == ATTACHMENT:
            await _attachment_part(db, store, who, body, parts, report)
        elif tag == ACTIVITY:
            definition = [(str(body["id"]), dict(body["definition"]))]
            await db.write(lambda c: activity_store.merge(c, store.id, definition))
            report.activities += 1
        elif tag == DOCUMENT:
            kind = next(k for k, name in KINDS.items() if name == body["kind"])
            address = Address(kind, body["activityId"], body["agent"], body["registration"], body["id"])
            content = base64.b64decode(body["content"], validate=True)
            updated = parse_timestamp(body["updated"])

            async def save(c: AsyncConnection) -> None:
                await document_store.lock(c, store.id, address)
                await document_store.save(
                    c, store.id, address, content, body["contentType"], body["etag"], updated
                )

            await db.write(save)
            report.documents += 1
        else:
            raise BadRequest(f"line {n}: unknown record {tag!r}")
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise BadRequest(f"line {n}.{tag}: malformed ({exc!r})") from exc


async def _attachment_part(
    db: Database,
    store: Store,
    who: Caller,
    body: dict[str, Any],
    parts: dict[str, tuple[IO[bytes], int]],
    report: ImportReport,
) -> None:
    sha2, length = str(body["sha2"]), int(body["length"])
    if sha2 not in parts:
        # Closed once the content is saved, or when the import ends (see import_lines).
        parts[sha2] = (tempfile.SpooledTemporaryFile(max_size=8 << 20), 0)  # noqa: SIM115
    file, expected = parts[sha2]
    if int(body["part"]) != expected:
        raise ValueError(f"attachment {sha2}: part {body['part']} where part {expected} was due")
    file.write(base64.b64decode(body["data"], validate=True))
    parts[sha2] = (file, expected + 1)
    if file.tell() < length:
        return
    del parts[sha2]
    try:
        if file.tell() != length:
            raise ValueError(f"attachment {sha2}: {file.tell()} bytes where {length} were declared")
        file.seek(0)
        if hashlib.file_digest(file, "sha256").hexdigest() != sha2.lower():  # type: ignore[arg-type]
            raise ValueError(f"attachment {sha2}: the content does not have this SHA-256")
        await db.write(
            lambda c: attachment_store.save(
                c, store.id, who.key, sha2, str(body["contentType"]), length, file
            )
        )
        report.attachments += 1
    finally:
        file.close()
