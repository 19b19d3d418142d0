"""The ``lrs`` command: serve, migrate, stores and credentials."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.jsontext import dumps
from lrs.store import credentials as credential_store
from lrs.store import migrate
from lrs.store import stores as store_store
from lrs.store.database import Database
from lrs.store.db import create_engine, database_url

T = TypeVar("T")


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

    url = database_url(settings)
    # Workers inherit the environment: resolve the database (and start the embedded server)
    # once here, so every worker connects to the same one.
    os.environ["LRS_DATABASE_URL"] = url

    async def prepare() -> None:
        engine = create_engine(url, pool_size=1)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    uvicorn.run(
        "lrs.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level,
        proxy_headers=True,
    )
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
        return await credential_store.create(
            conn, store_id, scopes, args.label, settings.authority_home_page, key=args.key, secret=args.secret
        )

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
        return await credential_store.revoke(conn, args.key)

    if not _run(settings, work):
        print(f"no active credential with key {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key}")
    return 0


def cmd_store_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: AsyncConnection) -> store_store.Store:
        return await store_store.create(conn, args.name)

    store = _run(settings, work)
    record = {"id": store.id, "name": store.name, "created": store.created.isoformat()}
    print(dumps(record) if args.json else f"created store {store.name} (id {store.id})")
    return 0


def cmd_store_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = [
        {"id": s.id, "name": s.name, "created": s.created.isoformat()}
        for s in _run(settings, store_store.list_all)
    ]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ["id", "name", "created"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrs", description="xAPI Learning Record Store")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the LRS (migrates first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

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

    store = sub.add_parser("store", help="manage stores").add_subparsers(dest="action", required=True)
    store_create = store.add_parser("create", help="create a store")
    store_create.add_argument("name")
    store_create.add_argument("--json", action="store_true")
    store_create.set_defaults(func=cmd_store_create)
    store_list = store.add_parser("list", help="list stores")
    store_list.add_argument("--json", action="store_true")
    store_list.set_defaults(func=cmd_store_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
