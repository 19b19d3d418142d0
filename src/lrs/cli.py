"""The ``lrs`` command: serve, migrate, stores and credentials."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.admin.bootstrap import first_admin
from lrs.analytics import store as analytics_store
from lrs.config import Settings, StoreSettings, store_settings
from lrs.jsontext import dumps
from lrs.store import audit, migrate
from lrs.store import credentials as credential_store
from lrs.store import stores as store_store
from lrs.store.database import Database
from lrs.store.db import create_engine, database_url
from lrs.store.schema import DEFAULT_STORE_ID

T = TypeVar("T")
CLI = "cli"  # the actor recorded in the audit trail for command-line changes


def _run(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Migrate, then run ``work`` in one transaction."""

    async def go() -> T:
        engine = create_engine(database_url(settings), pool_size=1)
        try:
            await migrate.upgrade(engine)
            return await Database(engine).write(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


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

    async def prepare() -> credential_store.NewCredential | None:
        engine = create_engine(url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            if settings.admin_key:
                return None
            return await first_admin(Database(engine), settings)
        finally:
            await engine.dispose()

    admin = asyncio.run(prepare())
    if admin is not None:
        print(
            "First run: an admin credential was created. Keep it; it is shown only now.\n"
            f"  key:    {admin.credential.key}\n  secret: {admin.secret}",
            file=sys.stderr,
        )
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
    async def nothing(conn: AsyncConnection) -> None:
        return None

    _run(settings, nothing)
    print("database is at the newest schema")
    return 0


def _store_id(conn_name: str) -> Callable[[AsyncConnection], Awaitable[int]]:
    async def find(conn: AsyncConnection) -> int:
        store = await store_store.get_by_name(conn, conn_name)
        if store is None:
            raise SystemExit(f"no store named {conn_name!r}")
        return store.id

    return find


def cmd_credentials_create(args: argparse.Namespace, settings: Settings) -> int:
    from lrs.api.auth import ALL_SCOPES

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown or not scopes:
        print(
            f"unknown scope(s): {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(sorted(ALL_SCOPES))}",
            file=sys.stderr,
        )
        return 2

    async def work(conn: AsyncConnection) -> credential_store.NewCredential:
        store_id = await _store_id(args.store)(conn)
        new = await credential_store.create(
            conn,
            store_id,
            scopes,
            args.label,
            settings.authority_home_page,
            expires=args.expires,
            key=args.key,
            secret=args.secret,
        )
        await audit.record(
            conn,
            CLI,
            "credential.create",
            args.store,
            new.credential.key,
            {"scopes": scopes, "label": args.label},
        )
        return new

    new = _run(settings, work)
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
    async def work(conn: AsyncConnection) -> list[credential_store.Credential]:
        store_id = await _store_id(args.store)(conn)
        return await credential_store.list_for_store(conn, store_id)

    rows = [
        {
            "key": c.key,
            "label": c.label,
            "scopes": ",".join(sorted(c.scopes)),
            "revoked": c.revoked.isoformat() if c.revoked else "",
            "expires": c.expires.isoformat() if c.expires else "",
        }
        for c in _run(settings, work)
    ]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ["key", "label", "scopes", "expires", "revoked"])
    return 0


def cmd_credentials_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: AsyncConnection) -> bool:
        credential = await credential_store.get(conn, args.key)
        if credential is None or not await credential_store.revoke(conn, args.key):
            return False
        await audit.record(conn, CLI, "credential.revoke", None, args.key)
        return True

    if not _run(settings, work):
        print(f"no active credential with key {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key}")
    return 0


def cmd_credentials_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: AsyncConnection) -> str | None:
        secret = await credential_store.rotate(conn, args.key)
        if secret is not None:
            await audit.record(conn, CLI, "credential.rotate", None, args.key)
        return secret

    secret = _run(settings, work)
    if secret is None:
        print(f"no active credential with key {args.key!r}", file=sys.stderr)
        return 1
    if args.json:
        print(dumps({"key": args.key, "secret": secret}))
    else:
        print(f"key: {args.key}\nsecret: {secret}\nThe old secret no longer works.")
    return 0


def _store_record(store: store_store.Store) -> dict[str, Any]:
    return {
        "id": store.id,
        "name": store.name,
        "created": store.created.isoformat(),
        "settings": store_settings(store.settings).model_dump(),
    }


def cmd_store_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: AsyncConnection) -> store_store.Store:
        if await store_store.name_taken(conn, args.name):
            raise SystemExit(f"a store named {args.name!r} exists")
        store = await store_store.create(conn, args.name)
        await audit.record(conn, CLI, "store.create", store.name, None)
        return store

    store = _run(settings, work)
    print(dumps(_store_record(store)) if args.json else f"created store {store.name} (id {store.id})")
    return 0


def cmd_store_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [_store_record(s) for s in _run(settings, store_store.list_all)]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ["id", "name", "created"])
    return 0


def cmd_store_rename(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: AsyncConnection) -> store_store.Store:
        store_id = await _store_id(args.name)(conn)
        if await store_store.name_taken(conn, args.new_name):
            raise SystemExit(f"a store named {args.new_name!r} exists")
        store = await store_store.rename(conn, store_id, args.new_name)
        await audit.record(conn, CLI, "store.rename", args.new_name, None, {"from": args.name})
        return store

    store = _run(settings, work)
    print(dumps(_store_record(store)) if args.json else f"renamed {args.name} to {store.name}")
    return 0


def cmd_store_delete(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        print(f"this deletes store {args.name!r} and all its data; add --yes", file=sys.stderr)
        return 2

    async def work(conn: AsyncConnection) -> None:
        store_id = await _store_id(args.name)(conn)
        if store_id == DEFAULT_STORE_ID:
            raise SystemExit("the default store cannot be deleted")
        await store_store.delete(conn, store_id)
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, CLI, "store.delete", args.name, None)

    _run(settings, work)
    print(f"deleted store {args.name}")
    return 0


def cmd_store_settings(args: argparse.Namespace, settings: Settings) -> int:
    """Show a store's settings, or change them with --set name=value (JSON values)."""

    async def work(conn: AsyncConnection) -> store_store.Store:
        store = await store_store.get_by_name(conn, args.name)
        if store is None:
            raise SystemExit(f"no store named {args.name!r}")
        if not args.set:
            return store
        values = dict(store.settings)
        for assignment in args.set:
            name, sep, raw = assignment.partition("=")
            if not sep:
                raise SystemExit(f"--set takes name=value, got {assignment!r}")
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError:
                values[name] = raw
        try:
            checked = StoreSettings.model_validate(values)
        except ValidationError as exc:
            raise SystemExit(str(exc)) from None
        new = checked.model_dump(exclude_defaults=True)
        updated = await store_store.update_settings(conn, store.id, new)
        await analytics_store.rezone(conn, store.id, checked.zone(settings.default_timezone))
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, CLI, "store.settings", args.name, None, new)
        return updated

    store = _run(settings, work)
    current = store_settings(store.settings).model_dump()
    if args.json:
        print(dumps(current))
    else:
        _print_table([{"setting": k, "value": dumps(v)} for k, v in current.items()], ["setting", "value"])
    return 0


def cmd_analytics_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute a store's analytics rollups from its statements (after changing verb sets)."""

    async def work(conn: AsyncConnection) -> int:
        store = await store_store.get_by_name(conn, args.store)
        if store is None:
            raise SystemExit(f"no store named {args.store!r}")
        own = store_settings(store.settings)
        count = await analytics_store.rebuild(conn, store.id, own, own.zone(settings.default_timezone))
        await audit.record(conn, CLI, "analytics.rebuild", args.store, None, {"statements": count})
        return count

    count = _run(settings, work)
    print(f"rebuilt analytics for store {args.store} from {count} statements")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrs", description="xAPI Learning Record Store")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the LRS (migrates first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="openapi/openapi.json", help="a path, or -")
    openapi.set_defaults(func=cmd_openapi)

    sub.add_parser("migrate", help="bring the database to the newest schema").set_defaults(func=cmd_migrate)

    creds = sub.add_parser("credentials", help="manage credentials").add_subparsers(
        dest="action", required=True
    )
    create = creds.add_parser("create", help="create a credential and print its secret")
    create.add_argument("--store", default="default")
    create.add_argument(
        "--scopes", default="all", help="comma-separated, e.g. statements/write,statements/read"
    )
    create.add_argument("--label", default="")
    create.add_argument(
        "--expires", type=datetime.fromisoformat, help="ISO 8601 time after which it is refused"
    )
    create.add_argument("--key", help="choose the key instead of a random one")
    create.add_argument("--secret", help="choose the secret instead of a random one")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_credentials_create)
    listing = creds.add_parser("list", help="list a store's credentials")
    listing.add_argument("--store", default="default")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_credentials_list)
    revoke = creds.add_parser("revoke", help="revoke a credential at once")
    revoke.add_argument("key")
    revoke.set_defaults(func=cmd_credentials_revoke)
    rotate = creds.add_parser("rotate", help="give a credential a new secret")
    rotate.add_argument("key")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_credentials_rotate)

    store = sub.add_parser("store", help="manage stores").add_subparsers(dest="action", required=True)
    store_create = store.add_parser("create", help="create a store")
    store_create.add_argument("name")
    store_create.add_argument("--json", action="store_true")
    store_create.set_defaults(func=cmd_store_create)
    store_list = store.add_parser("list", help="list stores")
    store_list.add_argument("--json", action="store_true")
    store_list.set_defaults(func=cmd_store_list)
    store_rename = store.add_parser("rename", help="rename a store")
    store_rename.add_argument("name")
    store_rename.add_argument("new_name")
    store_rename.add_argument("--json", action="store_true")
    store_rename.set_defaults(func=cmd_store_rename)
    store_delete = store.add_parser("delete", help="delete a store and all its data")
    store_delete.add_argument("name")
    store_delete.add_argument("--yes", action="store_true", help="really delete it")
    store_delete.set_defaults(func=cmd_store_delete)
    store_settings_cmd = store.add_parser("settings", help="show or change a store's settings")
    store_settings_cmd.add_argument("name")
    store_settings_cmd.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="e.g. min_group_size=10 (values are JSON when they parse)",
    )
    store_settings_cmd.add_argument("--json", action="store_true")
    store_settings_cmd.set_defaults(func=cmd_store_settings)

    analytics = sub.add_parser("analytics", help="analytics rollups").add_subparsers(
        dest="action", required=True
    )
    rebuild = analytics.add_parser("rebuild", help="recompute a store's rollups")
    rebuild.add_argument("--store", default="default")
    rebuild.set_defaults(func=cmd_analytics_rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
