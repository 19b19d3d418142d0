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

from lrs.config import Settings, StoreSettings, store_settings
from lrs.jsontext import dumps
from lrs.ops import analytics as analytics_ops
from lrs.ops import credentials as credential_ops
from lrs.ops import stores as store_ops
from lrs.ops.credentials import NewCredential
from lrs.ops.stores import Store
from lrs.scopes import ALL_SCOPES
from lrs.store import migrate
from lrs.store.database import Database
from lrs.store.db import create_engine, database_url
from lrs.xapi.errors import XAPIError

T = TypeVar("T")
CLI = "cli"  # the actor recorded in the audit trail for command-line changes


def _run(settings: Settings, operation: Callable[[Database], Awaitable[T]]) -> T:
    """Migrate, then run one operation; its refusal (no such store, a name taken) ends the
    command with the operation's own message."""

    async def go() -> T:
        engine = create_engine(database_url(settings), pool_size=1)
        try:
            await migrate.upgrade(engine)
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
        print(
            f"unknown scope(s): {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(sorted(ALL_SCOPES))}",
            file=sys.stderr,
        )
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
    rows = [
        {
            "key": c.key,
            "label": c.label,
            "scopes": ",".join(sorted(c.scopes)),
            "revoked": c.revoked.isoformat() if c.revoked else "",
            "expires": c.expires.isoformat() if c.expires else "",
        }
        for c in _run(settings, lambda db: credential_ops.list_for_store(db, args.store))
    ]
    if args.json:
        print(dumps(rows))
    else:
        _print_table(rows, ["key", "label", "scopes", "expires", "revoked"])
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
                raise SystemExit(f"--set takes name=value, got {assignment!r}")
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError:
                values[name] = raw
        try:
            checked = StoreSettings.model_validate(values)
        except ValidationError as exc:
            raise SystemExit(str(exc)) from None
        return await store_ops.set_settings(db, settings, CLI, args.name, checked)

    current = _run(settings, change).model_dump()
    if args.json:
        print(dumps(current))
    else:
        _print_table([{"setting": k, "value": dumps(v)} for k, v in current.items()], ["setting", "value"])
    return 0


def cmd_analytics_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute a store's analytics rollups from its statements (after changing verb sets)."""
    count = _run(settings, lambda db: analytics_ops.rebuild(db, settings, CLI, args.store))
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
