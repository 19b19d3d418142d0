"""The ``lrs`` command: serve, migrate, stores and credentials, export and import."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import ValidationError

from lrs import __version__, embedded
from lrs.config import Settings, StoreSettings, store_settings
from lrs.gctuning import COMMAND_YOUNG, collect_less
from lrs.jsontext import dumps
from lrs.ops import analytics as analytics_ops
from lrs.ops import credentials as credential_ops
from lrs.ops import forwarding, persons, pulls, regions, retention, transfer
from lrs.ops import stores as store_ops
from lrs.ops.credentials import CredentialOut, NewCredential
from lrs.ops.stores import Store
from lrs.scopes import ALL_SCOPES, scope_list
from lrs.store import migrate
from lrs.store.database import Database
from lrs.store.db import create_engine, database_url
from lrs.xapi.errors import XAPIError
from lrs.xapi.timestamps import parse_timestamp

T = TypeVar("T")
CLI = "cli"  # the actor recorded in the audit trail for command-line changes


def _run(settings: Settings, operation: Callable[[Database], Awaitable[T]]) -> T:
    """Migrate, then run one operation; its refusal (no such store, a name taken) ends the
    command with the operation's own message."""

    async def go() -> T:
        # An import keeps a connection per batch being written, and one for what it reads
        # in between; opening one for each transaction would cost more than the transaction.
        engine = create_engine(database_url(settings), pool_size=4, sql_trace_dir=settings.sql_trace_dir)
        try:
            await migrate.upgrade(engine)
            collect_less(COMMAND_YOUNG)
            return await operation(Database(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except XAPIError as exc:
        raise SystemExit(f"lrs: {exc.message}") from None


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    workers = args.workers or settings.workers
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics here; /metrics sums them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lrs-metrics-")
    url = database_url(settings)
    # Workers inherit the environment: resolve the database (and start the embedded server)
    # once here, so every worker connects to the same one.
    os.environ["LRS_DATABASE_URL"] = url

    async def first_admin(db: Database) -> NewCredential | None:
        return None if settings.admin_key else await credential_ops.first_admin(db, settings)

    admin = _run(settings, first_admin)
    if admin is not None:
        print(
            "First run: an admin credential was created. Keep it; it is shown only now.\n"
            f"  key:    {admin.credential.key}\n  secret: {admin.secret}",
            file=sys.stderr,
        )
    # uvicorn shuts down on SIGTERM, then raises the signal again; with its default action
    # the process would die there without running its exit handlers, and an embedded
    # PostgreSQL this process started would be left running. Ending with SystemExit instead
    # runs them (and exits with the status a process killed by SIGTERM gives).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(
        "lrs.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        timeout_graceful_shutdown=30,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=True,
    )
    return 0


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    """Write the OpenAPI document of every route (xAPI, analytics, admin, operations)."""
    from lrs.app import openapi_document

    text = openapi_document()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def nothing(db: Database) -> None:
        return None

    _run(settings, nothing)
    print("database is at the newest schema")
    return 0


def cmd_credentials_create(args: argparse.Namespace, settings: Settings) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown or not scopes:
        named = ", ".join(unknown) if unknown else "none given"
        print(f"lrs: unknown scope(s): {named}; the scopes are:\n{scope_list()}", file=sys.stderr)
        return 2

    async def create(db: Database) -> NewCredential:
        return await credential_ops.create(
            db,
            settings,
            CLI,
            args.store,
            scopes,
            args.label,
            expires=args.expires,
            key=args.key,
            secret=args.secret,
        )

    new = _run(settings, create)
    record = {
        "store": args.store,
        "key": new.credential.key,
        "secret": new.secret,
        "label": new.credential.label,
        "scopes": sorted(new.credential.scopes),
    }
    if args.json:
        print(dumps(record))
    else:
        for name, value in record.items():
            print(f"{name}: {', '.join(value) if isinstance(value, list) else value}")
        print("The secret is shown only now; keep it safe.")
    return 0


def cmd_credentials_list(args: argparse.Namespace, settings: Settings) -> int:
    found = _run(settings, lambda db: credential_ops.list_for_store(db, args.store))
    # The admin API's shape, so that scripts read one format whichever they use.
    rows = [CredentialOut.of(c).model_dump(mode="json") for c in found]
    if args.json:
        print(dumps(rows))
    else:
        shown = [
            {
                **r,
                "scopes": ",".join(r["scopes"]),
                "expires": r["expires"] or "",
                "revoked": r["revoked"] or "",
            }
            for r in rows
        ]
        _print_table(shown, ["key", "label", "scopes", "expires", "revoked"])
    return 0


def cmd_credentials_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not _run(settings, lambda db: credential_ops.revoke(db, CLI, args.key)):
        print(f"credential {args.key!r} is already revoked", file=sys.stderr)
        return 1
    print(f"revoked {args.key}")
    return 0


def cmd_credentials_rotate(args: argparse.Namespace, settings: Settings) -> int:
    secret = _run(settings, lambda db: credential_ops.rotate(db, CLI, args.key))
    if args.json:
        print(dumps({"key": args.key, "secret": secret}))
    else:
        print(f"key: {args.key}\nsecret: {secret}\nThe old secret no longer works.")
    return 0


def _store_record(store: Store) -> dict[str, Any]:
    return {
        "id": store.id,
        "name": store.name,
        "created": store.created.isoformat(),
        "settings": store_settings(store.settings).model_dump(),
    }


def cmd_store_create(args: argparse.Namespace, settings: Settings) -> int:
    store = _run(settings, lambda db: store_ops.create(db, CLI, args.name))
    print(dumps(_store_record(store)) if args.json else f"created store {store.name} (id {store.id})")
    return 0


def cmd_store_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [_store_record(s) for s in _run(settings, store_ops.list_all)]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ["id", "name", "created"])
    return 0


def cmd_store_rename(args: argparse.Namespace, settings: Settings) -> int:
    store = _run(settings, lambda db: store_ops.rename(db, CLI, args.name, args.new_name))
    print(dumps(_store_record(store)) if args.json else f"renamed {args.name} to {store.name}")
    return 0


def cmd_store_delete(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        print(f"this deletes store {args.name!r} and all its data; add --yes", file=sys.stderr)
        return 2
    _run(settings, lambda db: store_ops.delete(db, CLI, args.name))
    print(f"deleted store {args.name}")
    return 0


def cmd_store_settings(args: argparse.Namespace, settings: Settings) -> int:
    """Show a store's settings, or change them with --set name=value (JSON values)."""

    async def change(db: Database) -> StoreSettings:
        current = await store_ops.get_settings(db, args.name)
        if not args.set:
            return current
        values = current.model_dump(exclude_defaults=True)
        for assignment in args.set:
            name, sep, raw = assignment.partition("=")
            if not sep:
                raise SystemExit(f"lrs: --set takes name=value, got {assignment!r}")
            if name not in StoreSettings.model_fields:
                raise SystemExit(
                    f"lrs: {name!r} is not a store setting; `lrs store settings --help` lists them"
                )
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError:
                values[name] = raw
            if values[name] is None:
                del values[name]  # back to the default
        try:
            checked = StoreSettings.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise SystemExit(f"lrs: {problems}") from None
        return await store_ops.set_settings(db, settings, CLI, args.name, checked)

    current = _run(settings, change).model_dump()
    if args.json:
        print(dumps(current))
    else:
        _print_table([{"setting": k, "value": dumps(v)} for k, v in current.items()], ["setting", "value"])
    return 0


def cmd_embedded_status(args: argparse.Namespace, settings: Settings) -> int:
    """Whether the embedded PostgreSQL runs, where its data is, and who uses it."""
    found = embedded.status(settings.data_dir)
    print(f"data directory: {found.data_dir}")
    if not found.running:
        print("not running")
        return 0
    print(f"running: pid {found.pid}, socket in {found.socket_dir}")
    print(f"used by lrs processes: {', '.join(map(str, found.users)) or 'none'}")
    return 0


def cmd_embedded_stop(args: argparse.Namespace, settings: Settings) -> int:
    if embedded.stop(settings.data_dir):
        print(f"stopped the embedded PostgreSQL in {settings.data_dir}")
    else:
        print("the embedded PostgreSQL was not running")
    return 0


def cmd_analytics_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute a store's analytics rollups from its statements (after changing verb sets)."""
    started = time.monotonic()
    shown = sys.stderr.isatty()

    def progress(count: int) -> None:
        if shown:
            rate = count / max(time.monotonic() - started, 1e-9)
            print(f"\r{count} statements counted ({rate:,.0f}/s)", end="", file=sys.stderr)

    count = _run(settings, lambda db: analytics_ops.rebuild(db, settings, CLI, args.store, progress))
    if shown:
        print(file=sys.stderr)
    print(f"rebuilt analytics for store {args.store} from {count} statements")
    return 0


def _output(name: str) -> IO[bytes]:
    """Where an export goes: standard output for "-", gzip when the name ends in .gz."""
    if name == "-":
        return sys.stdout.buffer
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(name, "wb", compresslevel=5))
    return open(name, "wb")


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write a store's statements (and, if asked, documents and attachments) as JSON Lines."""
    ask = transfer.ExportRequest(args.since, args.until, args.with_documents, args.with_attachments)

    async def go(db: Database) -> int:
        out = _output(args.output)
        lines = 0
        try:
            async for chunk in transfer.export(db, CLI, args.store, ask):
                out.write(chunk)
                lines += chunk.count(b"\n")
        finally:
            if out is not sys.stdout.buffer:
                out.close()
        return lines

    lines = _run(settings, go)
    print(f"exported {lines} lines from store {args.store}", file=sys.stderr)
    return 0


async def _file_chunks(path: str) -> AsyncIterator[bytes]:
    """A file's bytes in 1 MiB reads (gunzipped when it is gzip), "-" for standard input."""
    raw = cast(io.BufferedReader, sys.stdin.buffer if path == "-" else open(path, "rb"))  # noqa: SIM115
    gzipped = raw.peek(2)[:2] == b"\x1f\x8b"
    source = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if gzipped else raw
    try:
        while chunk := source.read(1 << 20):
            yield chunk
    finally:
        source.close()
        raw.close()


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Read an export (or JSON Lines of statements from another LRS) into a store."""
    started = time.monotonic()
    shown = sys.stderr.isatty()

    def progress(report: transfer.ImportReport) -> None:
        if shown:
            rate = report.statements / max(time.monotonic() - started, 1e-9)
            print(
                f"\r{report.lines} lines, {report.statements} statements ({rate:,.0f}/s),"
                f" {len(report.errors)} errors",
                end="",
                file=sys.stderr,
            )

    def run(db: Database) -> Awaitable[transfer.ImportReport]:
        return transfer.import_lines(
            db,
            settings,
            CLI,
            args.store,
            _file_chunks(args.file),
            on_error=args.on_error,
            jobs=args.jobs,
            progress=progress,
        )

    try:
        report = _run(settings, run)
    except transfer.ImportBroken as exc:
        raise SystemExit(f"lrs: {exc}") from None
    if shown:
        print(file=sys.stderr)
    for line, message in report.errors:
        print(f"{args.file}:{line}: {message}", file=sys.stderr)
    print(
        f"imported {report.statements} statements, {report.documents} documents,"
        f" {report.attachments} attachments and {report.activities} activity definitions"
        f" from {report.lines} lines into store {args.store}"
        + (f"; stopped at line {report.errors[-1][0]}" if report.stopped else "")
        + (f"; skipped {len(report.errors)} lines" if report.errors and not report.stopped else ""),
        file=sys.stderr,
    )
    return 1 if report.errors else 0


def _list(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _positive(raw: str) -> int:
    """A count of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _agent(raw: str) -> dict[str, Any]:
    """An --agent value: an Agent as JSON."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('an Agent object, such as {"mbox": "mailto:kari@kommune.no"}')
    return value


def cmd_person_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write everything a store holds about a person to a ZIP archive (GDPR Article 15)."""

    async def go(db: Database) -> persons.Copy:
        return await persons.export(db, CLI, args.store, args.agent)

    copy = _run(settings, go)
    with copy.file, open(args.output, "wb") as out:
        while chunk := copy.file.read(1 << 20):
            out.write(chunk)
    print(
        f"wrote {args.output}: {copy.statements} statements, {copy.documents} documents,"
        f" {copy.attachments} attachments, {copy.figures} analytics rows,"
        f" {copy.cohort_memberships} cohort memberships",
        file=sys.stderr,
    )
    return 0


def cmd_person_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase a person from a store (GDPR Article 17); the receipt is printed as JSON."""

    async def go(db: Database) -> dict[str, Any]:
        receipt = await persons.erase(db, settings, CLI, args.store, args.agent, dry_run=args.dry_run)
        return receipt.as_dict()

    print(json.dumps(_run(settings, go), indent=2, ensure_ascii=False))
    return 0


def cmd_retention_run(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the statements past the store's retention period (or show what would go)."""

    async def go(db: Database) -> dict[str, Any]:
        outcome = await retention.run(db, settings, CLI, args.store, dry_run=args.dry_run)
        return outcome.as_dict()

    print(json.dumps(_run(settings, go), indent=2, ensure_ascii=False))
    return 0


def cmd_region(args: argparse.Namespace, settings: Settings) -> int:
    """Regions: create, list, delete, a store joining or leaving, a region credential."""

    async def go(db: Database) -> Any:
        if args.action == "create":
            return await regions.create(db, CLI, args.name, args.min_group_size)
        if args.action == "list":
            return await regions.list_all(db)
        if args.action == "delete":
            return await regions.delete(db, CLI, args.name)
        if args.action == "join":
            return await regions.join(db, CLI, args.name, args.store)
        if args.action == "leave":
            return await regions.leave(db, CLI, args.name, args.store)
        return await regions.create_credential(db, settings, CLI, args.name, args.label)

    if args.action == "delete" and not args.yes:
        print(f"this deletes region {args.name!r} and its credentials; add --yes", file=sys.stderr)
        return 2
    result = _run(settings, go)
    if args.action == "credentials":
        record = {"key": result.credential.key, "secret": result.secret, "region": args.name}
        print(dumps(record) if args.json else f"key: {record['key']}\nsecret: {record['secret']}")
        return 0
    if args.action == "delete":
        print(f"deleted region {args.name}")
        return 0
    shown = result if isinstance(result, list) else [result]
    rows = [
        {
            "name": r.name,
            "min_group_size": r.min_group_size,
            "members": ", ".join(r.members),
            "sharing": ", ".join(r.sharing),
        }
        for r in shown
    ]
    if args.json:
        print(dumps(rows if isinstance(result, list) else rows[0]))
    else:
        _print_table(rows, ["name", "min_group_size", "members", "sharing"])
    return 0


def cmd_forward_add(args: argparse.Namespace, settings: Settings) -> int:
    """Create a forwarding rule."""
    try:
        spec = forwarding.RuleSpec(
            name=args.name,
            endpoint=args.endpoint,
            version=args.version,
            key=args.key,
            secret=args.secret,
            filter=forwarding.Filter(
                verbs=_list(args.verbs),
                activities=_list(args.activities),
                credentials=_list(args.credentials),
            ),
            pseudonymise=args.pseudonymise,
            pseudonym_home_page=args.pseudonym_home_page,
            batch_size=args.batch_size,
            max_attempts=args.max_attempts,
        )
    except ValidationError as exc:
        raise SystemExit(f"lrs: {exc}") from None
    rule = _run(settings, lambda db: forwarding.create(db, settings, CLI, args.store, spec))
    print(f"forwarding {rule.name}: {args.store} -> {rule.endpoint} ({rule.version})")
    return 0


def cmd_forward_list(args: argparse.Namespace, settings: Settings) -> int:
    rules = _run(settings, lambda db: forwarding.list_rules(db, settings, args.store))
    rows = [r.model_dump(mode="json") for r in rules]
    if args.json:
        print(dumps(rows))
    else:
        columns = (
            "name",
            "endpoint",
            "enabled",
            "pending",
            "lag_seconds",
            "sent",
            "failed",
            "dead",
            "last_error",
        )
        _print_table(rows, columns)
    return 0


def cmd_forward_switch(args: argparse.Namespace, settings: Settings) -> int:
    change = forwarding.RuleChange(enabled=args.action == "enable")
    _run(settings, lambda db: forwarding.change(db, settings, CLI, args.store, args.name, change))
    print(f"forwarding {args.name}: {args.action}d")
    return 0


def cmd_forward_remove(args: argparse.Namespace, settings: Settings) -> int:
    _run(settings, lambda db: forwarding.delete(db, CLI, args.store, args.name))
    print(f"forwarding {args.name}: removed")
    return 0


def cmd_forward_dead(args: argparse.Namespace, settings: Settings) -> int:
    dead = _run(settings, lambda db: forwarding.dead_letters(db, args.store, args.name))
    rows = [d.model_dump(mode="json") for d in dead]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ("id", "statements", "first_seq", "last_seq", "attempts", "created", "error"))
    return 0


def cmd_forward_retry(args: argparse.Namespace, settings: Settings) -> int:
    _run(settings, lambda db: forwarding.retry(db, CLI, args.store, args.name, args.id))
    print(f"dead letter {args.id}: back in the outbox of {args.name}")
    return 0


def cmd_forward_drop(args: argparse.Namespace, settings: Settings) -> int:
    _run(settings, lambda db: forwarding.drop(db, CLI, args.store, args.name, args.id))
    print(f"dead letter {args.id}: dropped")
    return 0


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    """Pull statements from another LRS into a store, from where the last pull stopped."""
    name = args.name or (urlsplit(args.source).hostname or "source")
    try:
        spec = pulls.SourceSpec(
            name=name,
            endpoint=args.source,
            version=args.version,
            key=args.key,
            secret=args.secret,
            since=args.since,
            every_seconds=args.every,
        )
    except ValidationError as exc:
        raise SystemExit(f"lrs: {exc}") from None
    shown = sys.stderr.isatty()

    def progress(report: pulls.PullReport) -> None:
        if shown:
            print(
                f"\r{report.statements} statements, {report.pages} pages, {report.rate:,.0f}/s",
                end="",
                file=sys.stderr,
            )

    async def go(db: Database) -> pulls.PullReport:
        await pulls.save_source(db, settings, CLI, args.store, spec)
        return await pulls.run(
            db, settings, CLI, args.store, name, page_size=args.page_size, progress=progress
        )

    report = _run(settings, go)
    if shown:
        print(file=sys.stderr)
    for rejected in report.rejected:
        print(f"rejected {rejected}", file=sys.stderr)
    print(
        f"pulled {report.statements} statements in {report.pages} pages ({report.rate:,.0f}/s)"
        f" from {name} into store {args.store}" + (f"; stopped: {report.error}" if report.error else ""),
        file=sys.stderr,
    )
    return 1 if report.error else 0


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default and keeps the epilog's lines as written."""


def _timestamp(value: str) -> datetime:
    instant = parse_timestamp(value)
    if instant is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time, e.g. 2027-06-30T23:59:00+02:00")
    return instant


JSON_HELP = "print JSON instead of a table"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrs", description="xAPI Learning Record Store", formatter_class=_Help
    )
    parser.add_argument("--version", action="version", version=f"lrs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = group.add_parser(
            name, help=text, description=text, formatter_class=_Help, **kwargs
        )
        return made

    serve = command(
        sub, "serve", "run the LRS (migrates first; starts the embedded PostgreSQL without LRS_DATABASE_URL)"
    )
    serve.add_argument("--host", help="address to listen on (default: LRS_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: LRS_PORT, 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: LRS_WORKERS, 1)")
    serve.set_defaults(func=cmd_serve)

    openapi = command(sub, "openapi", "write the OpenAPI document of every route")
    openapi.add_argument("--output", default="openapi/openapi.json", help="a path, or - for standard output")
    openapi.set_defaults(func=cmd_openapi)

    command(sub, "migrate", "bring the database to the newest schema").set_defaults(func=cmd_migrate)

    embedded = command(sub, "embedded", "the embedded PostgreSQL (used when LRS_DATABASE_URL is unset)")
    embedded_sub = embedded.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(
        embedded_sub, "status", "show whether it runs, where, and which lrs processes use it"
    ).set_defaults(func=cmd_embedded_status)
    stop = command(
        embedded_sub, "stop", "stop it now (it also stops when the last lrs process using it exits)"
    )
    stop.set_defaults(func=cmd_embedded_stop)

    creds = command(sub, "credentials", "manage credentials").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = command(
        creds,
        "create",
        "create a credential and print its secret (shown only now)",
        epilog="scopes:\n" + scope_list(),
    )
    create.add_argument("--store", default="default", help="the store it belongs to")
    create.add_argument(
        "--scopes", required=True, help="comma-separated, e.g. statements/write,statements/read (see below)"
    )
    create.add_argument("--label", default="", help="who uses it, e.g. the vendor or the analyst")
    create.add_argument("--expires", type=_timestamp, help="ISO 8601 time after which it is refused")
    create.add_argument("--key", help="choose the key instead of a random one")
    create.add_argument("--secret", help="choose the secret instead of a random one")
    create.add_argument("--json", action="store_true", help=JSON_HELP)
    create.set_defaults(func=cmd_credentials_create)
    listing = command(creds, "list", "list a store's credentials (never their secrets)")
    listing.add_argument("--store", default="default", help="the store")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(func=cmd_credentials_list)
    revoke = command(creds, "revoke", "revoke a credential, at once on every server process")
    revoke.add_argument("key", help="the credential's key")
    revoke.set_defaults(func=cmd_credentials_revoke)
    rotate = command(creds, "rotate", "give a credential a new secret (the old one stops working)")
    rotate.add_argument("key", help="the credential's key")
    rotate.add_argument("--json", action="store_true", help=JSON_HELP)
    rotate.set_defaults(func=cmd_credentials_rotate)

    store = command(sub, "store", "manage stores").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    store_create = command(store, "create", "create a store")
    store_create.add_argument("name", help="letters, digits, '.', '_' or '-', e.g. bergen-kommune")
    store_create.add_argument("--json", action="store_true", help=JSON_HELP)
    store_create.set_defaults(func=cmd_store_create)
    store_list = command(store, "list", "list stores")
    store_list.add_argument("--json", action="store_true", help=JSON_HELP)
    store_list.set_defaults(func=cmd_store_list)
    store_rename = command(store, "rename", "rename a store")
    store_rename.add_argument("name", help="the store's name now")
    store_rename.add_argument("new_name", help="its new name")
    store_rename.add_argument("--json", action="store_true", help=JSON_HELP)
    store_rename.set_defaults(func=cmd_store_rename)
    store_delete = command(store, "delete", "delete a store and all its data")
    store_delete.add_argument("name", help="the store")
    store_delete.add_argument("--yes", action="store_true", help="really delete it")
    store_delete.set_defaults(func=cmd_store_delete)
    store_settings_cmd = command(
        store,
        "settings",
        "show or change a store's settings",
        epilog="settings:\n" + settings_list(),
    )
    store_settings_cmd.add_argument("name", help="the store")
    store_settings_cmd.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="change one setting, e.g. min_group_size=10 (values are JSON when they parse; null resets)",
    )
    store_settings_cmd.add_argument("--json", action="store_true", help=JSON_HELP)
    store_settings_cmd.set_defaults(func=cmd_store_settings)

    analytics = command(sub, "analytics", "analytics rollups").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    rebuild = command(analytics, "rebuild", "recompute a store's rollups from its statements")
    rebuild.add_argument("--store", default="default", help="the store")
    rebuild.set_defaults(func=cmd_analytics_rebuild)

    export = command(
        sub,
        "export",
        "write a store's statements as JSON Lines (gzip when the file name ends in .gz)",
        epilog='The format is described in the README, section "Moving data".',
    )
    export.add_argument("--store", default="default", help="the store")
    export.add_argument("--since", type=_timestamp, help="only statements stored after this time")
    export.add_argument("--until", type=_timestamp, help="only statements stored at or before this time")
    export.add_argument("--output", default="-", help="a file, or - for standard output")
    export.add_argument(
        "--with-documents",
        action="store_true",
        help="add State and profile documents and activity definitions",
    )
    export.add_argument("--with-attachments", action="store_true", help="add the attachments' bytes")
    export.set_defaults(func=cmd_export)

    imports = command(
        sub,
        "import",
        "read what export writes, or JSON Lines of statements, into a store (validated as the API does)",
    )
    imports.add_argument("file", help="the file (plain or gzip), or - for standard input")
    imports.add_argument("--store", default="default", help="the store")
    imports.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="at a bad line: stop (batches before it stay stored) or skip it and go on",
    )
    imports.add_argument(
        "--jobs",
        type=_positive,
        default=min(os.cpu_count() or 1, 4),
        help="processes that parse, validate and write the batches (default: one per core, at"
        " most 4; 1: this process does)",
    )
    imports.set_defaults(func=cmd_import)

    pull = command(sub, "pull", "pull statements from another LRS (again: from where it stopped)")
    pull.add_argument("--from", dest="source", required=True, help="the other LRS's xAPI base URL")
    pull.add_argument("--key", required=True, help="a key of the other LRS with statements/read")
    pull.add_argument(
        "--secret", required=True, help="its secret (kept encrypted; --secret=VALUE if it starts with -)"
    )
    pull.add_argument("--since", type=_timestamp, help="the first time only: statements stored after this")
    pull.add_argument("--store", default="default", help="the store to pull into")
    pull.add_argument("--name", help="the source's name (default: the URL's host)")
    pull.add_argument(
        "--version", choices=("2.0.0", "1.0.3"), default="2.0.0", help="the xAPI version spoken"
    )
    pull.add_argument("--every", type=int, help="also pull every this many seconds (the background worker)")
    pull.add_argument("--page-size", type=int, default=500, help="statements per request")
    pull.set_defaults(func=cmd_pull)

    person_cmd = command(sub, "person", "a person's data under GDPR: a copy of it, or its erasure")
    person = person_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    person_export = command(person, "export", "write all a store holds about a person to a ZIP archive")
    person_erase = command(
        person,
        "erase",
        "erase a person: their statements, documents, attachments, figures and memberships",
        epilog='What erasure removes and keeps is described in the README, section "Personal data".',
    )
    for person_action in (person_export, person_erase):
        person_action.add_argument("--store", default="default", help="the store")
        person_action.add_argument(
            "--agent",
            type=_agent,
            action="append",
            required=True,
            help='an identifier of the person as an Agent, e.g. \'{"mbox":"mailto:kari@kommune.no"}\';'
            " repeat it for every identifier they go by",
        )
    person_export.add_argument("--output", required=True, help="the archive to write")
    person_export.set_defaults(func=cmd_person_export)
    person_erase.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    person_erase.set_defaults(func=cmd_person_erase)

    retention_cmd = command(sub, "retention", "statements kept no longer than a store's retention period")
    retention_actions = retention_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    retention_run = command(
        retention_actions, "run", "delete the statements past the store's retention period now"
    )
    retention_run.add_argument("--store", default="default", help="the store")
    retention_run.add_argument("--dry-run", action="store_true", help="only show what the run would delete")
    retention_run.set_defaults(func=cmd_retention_run)

    region_cmd = command(sub, "region", "regions: stores that share aggregate figures (see README, Regions)")
    region = region_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    region_create = command(region, "create", "a new region")
    region_create.add_argument("name", help="the region's name")
    region_create.add_argument("--min-group-size", type=int, default=5, help="the smallest group shown")
    command(region, "list", "the regions and their members")
    region_delete = command(region, "delete", "delete a region and its credentials")
    region_delete.add_argument("name", help="the region")
    region_delete.add_argument("--yes", action="store_true", help="really delete it")
    for action, text in (
        ("join", "a store joins (its setting region_sharing must allow it)"),
        ("leave", "a store leaves: its figures are out of the region's answers at once"),
    ):
        member = command(region, action, text)
        member.add_argument("name", help="the region")
        member.add_argument("store", help="the store")
    region_credentials = command(region, "credentials", "a credential reading the region's aggregates only")
    region_credentials.add_argument("name", help="the region")
    region_credentials.add_argument("--label", default="", help="what the credential is for")
    for parser_ in region.choices.values():
        parser_.add_argument("--json", action="store_true", help=JSON_HELP)
        parser_.set_defaults(func=cmd_region)

    forward = command(sub, "forward", "forward statements to other LRSs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = command(forward, "add", "forward a store's matching statements (stored from now on) to another LRS")
    add.add_argument("--store", default="default", help="the store")
    add.add_argument("--name", required=True, help="the rule's name")
    add.add_argument(
        "--endpoint", required=True, help="the target's xAPI base URL, e.g. https://region.example/xapi"
    )
    add.add_argument("--key", required=True, help="the target credential's key")
    add.add_argument(
        "--secret",
        required=True,
        help="the target credential's secret (kept encrypted; --secret=VALUE if it starts with -)",
    )
    add.add_argument(
        "--version", choices=("2.0.0", "1.0.3"), default="2.0.0", help="the xAPI version to speak"
    )
    add.add_argument("--verbs", help="only these verb ids (comma-separated)")
    add.add_argument("--activities", help="only activities with these IRI prefixes (comma-separated)")
    add.add_argument("--credentials", help="only statements these credentials sent (keys, comma-separated)")
    add.add_argument("--pseudonymise", action="store_true", help="replace agents by stable pseudonyms")
    add.add_argument("--pseudonym-home-page", help="account.homePage of the pseudonyms")
    add.add_argument("--batch-size", type=int, default=100, help="statements per POST")
    add.add_argument("--max-attempts", type=int, default=8, help="attempts before a batch is a dead letter")
    add.set_defaults(func=cmd_forward_add)
    forward_list = command(forward, "list", "a store's rules: waiting, lag, sent, failed, dead letters")
    forward_list.add_argument("--store", default="default", help="the store")
    forward_list.add_argument("--json", action="store_true", help=JSON_HELP)
    forward_list.set_defaults(func=cmd_forward_list)
    for action, text in (
        ("enable", "send again"),
        ("disable", "stop sending (new statements are not queued)"),
    ):
        switch = command(forward, action, text)
        switch.add_argument("name", help="the rule")
        switch.add_argument("--store", default="default", help="the store")
        switch.set_defaults(func=cmd_forward_switch)
    remove = command(forward, "remove", "delete a rule and what it still had to send")
    remove.add_argument("name", help="the rule")
    remove.add_argument("--store", default="default", help="the store")
    remove.set_defaults(func=cmd_forward_remove)
    dead = command(forward, "dead", "a rule's dead letters: batches refused too often")
    dead.add_argument("name", help="the rule")
    dead.add_argument("--store", default="default", help="the store")
    dead.add_argument("--json", action="store_true", help=JSON_HELP)
    dead.set_defaults(func=cmd_forward_dead)
    for action, text, func in (
        ("retry", "send a dead letter's statements again", cmd_forward_retry),
        ("drop", "give up on a dead letter", cmd_forward_drop),
    ):
        one = command(forward, action, text)
        one.add_argument("name", help="the rule")
        one.add_argument("id", type=int, help="the dead letter's id")
        one.add_argument("--store", default="default", help="the store")
        one.set_defaults(func=func)
    return parser


def settings_list() -> str:
    """One line per store setting: its name and what it does."""
    fields = StoreSettings.model_fields
    width = max(map(len, fields))
    return "\n".join(f"  {name.ljust(width)}  {field.description or ''}" for name, field in fields.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
