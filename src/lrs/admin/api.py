"""The admin API: stores, their settings and credentials, and the audit trail.

Every route needs a credential with the ``admin`` scope. Every change is written to the
audit trail in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.admin.models import (
    AuditOut,
    CredentialCreated,
    CredentialIn,
    CredentialOut,
    SecretOut,
    StoreIn,
    StoreOut,
)
from lrs.analytics import store as analytics_store
from lrs.api.auth import ADMIN, Caller, CallerDep
from lrs.api.responses import database
from lrs.config import StoreSettings
from lrs.store import audit
from lrs.store import credentials as credential_store
from lrs.store import stores as store_store
from lrs.store.schema import DEFAULT_STORE_ID
from lrs.store.stores import Store
from lrs.xapi.errors import Conflict, NotFound

router = APIRouter(prefix="/admin", tags=["Admin"])
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "The credential lacks the `admin` scope"},
    404: {"description": "No such store or credential"},
}


def _admin(who: Caller) -> Caller:
    who.require(ADMIN)
    return who


async def _write(request: Request, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    return await database(request).write(work)


async def _store(conn: AsyncConnection, name: str) -> Store:
    store = await store_store.get_by_name(conn, name)
    if store is None:
        raise NotFound(f"no store named {name!r}")
    return store


async def _credential_in(conn: AsyncConnection, store: Store, key: str) -> credential_store.Credential:
    credential = await credential_store.get(conn, key)
    if credential is None or credential.store_id != store.id:
        raise NotFound(f"no credential {key!r} in store {store.name!r}")
    return credential


# --- stores -----------------------------------------------------------------------------------


@router.get("/stores", response_model=list[StoreOut], responses=_ERRORS, summary="List stores")
async def list_stores(request: Request, who: CallerDep) -> list[StoreOut]:
    _admin(who)
    return [StoreOut.of(s) for s in await database(request).read(store_store.list_all)]


@router.post("/stores", response_model=StoreOut, status_code=201, responses=_ERRORS, summary="Create a store")
async def create_store(body: StoreIn, request: Request, who: CallerDep) -> StoreOut:
    _admin(who)

    async def work(conn: AsyncConnection) -> Store:
        if await store_store.name_taken(conn, body.name):
            raise Conflict(f"a store named {body.name!r} exists")
        store = await store_store.create(conn, body.name)
        await audit.record(conn, who.key, "store.create", store.name, None)
        return store

    return StoreOut.of(await _write(request, work))


@router.get("/stores/{name}", response_model=StoreOut, responses=_ERRORS, summary="One store")
async def get_store(name: str, request: Request, who: CallerDep) -> StoreOut:
    _admin(who)
    return StoreOut.of(await database(request).read(lambda conn: _store(conn, name)))


@router.patch("/stores/{name}", response_model=StoreOut, responses=_ERRORS, summary="Rename a store")
async def rename_store(name: str, body: StoreIn, request: Request, who: CallerDep) -> StoreOut:
    _admin(who)

    async def work(conn: AsyncConnection) -> Store:
        store = await _store(conn, name)
        if body.name != name and await store_store.name_taken(conn, body.name):
            raise Conflict(f"a store named {body.name!r} exists")
        renamed = await store_store.rename(conn, store.id, body.name)
        await audit.record(conn, who.key, "store.rename", body.name, None, {"from": name})
        return renamed

    return StoreOut.of(await _write(request, work))


@router.delete(
    "/stores/{name}", status_code=204, responses=_ERRORS, summary="Delete a store and all its data"
)
async def delete_store(name: str, request: Request, who: CallerDep) -> Response:
    _admin(who)

    async def work(conn: AsyncConnection) -> None:
        store = await _store(conn, name)
        if store.id == DEFAULT_STORE_ID:
            raise Conflict("the default store cannot be deleted")
        await store_store.delete(conn, store.id)
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, who.key, "store.delete", name, None)

    await _write(request, work)
    return Response(status_code=204)


@router.get(
    "/stores/{name}/settings", response_model=StoreSettings, responses=_ERRORS, summary="A store's settings"
)
async def get_settings(name: str, request: Request, who: CallerDep) -> StoreSettings:
    _admin(who)
    store = await database(request).read(lambda conn: _store(conn, name))
    return StoreSettings.model_validate(store.settings)


@router.put(
    "/stores/{name}/settings",
    response_model=StoreSettings,
    responses=_ERRORS,
    summary="Replace a store's settings",
)
async def put_settings(name: str, body: StoreSettings, request: Request, who: CallerDep) -> StoreSettings:
    _admin(who)

    async def work(conn: AsyncConnection) -> Store:
        store = await _store(conn, name)
        updated = await store_store.update_settings(conn, store.id, body.model_dump(exclude_defaults=True))
        await analytics_store.rezone(conn, store.id, body.zone(request.app.state.settings.default_timezone))
        # Cached credentials carry their store's settings.
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(
            conn, who.key, "store.settings", name, None, body.model_dump(exclude_defaults=True)
        )
        return updated

    return StoreSettings.model_validate((await _write(request, work)).settings)


# --- credentials ------------------------------------------------------------------------------


@router.get(
    "/stores/{name}/credentials",
    response_model=list[CredentialOut],
    responses=_ERRORS,
    summary="A store's credentials (never their secrets)",
)
async def list_credentials(name: str, request: Request, who: CallerDep) -> list[CredentialOut]:
    _admin(who)

    async def work(conn: AsyncConnection) -> list[credential_store.Credential]:
        return await credential_store.list_for_store(conn, (await _store(conn, name)).id)

    return [CredentialOut.of(c) for c in await database(request).read(work)]


@router.post(
    "/stores/{name}/credentials",
    response_model=CredentialCreated,
    status_code=201,
    responses=_ERRORS,
    summary="Create a credential; its secret is shown once",
)
async def create_credential(
    name: str, body: CredentialIn, request: Request, who: CallerDep
) -> CredentialCreated:
    _admin(who)
    home_page = request.app.state.settings.authority_home_page

    async def work(conn: AsyncConnection) -> credential_store.NewCredential:
        store = await _store(conn, name)
        new = await credential_store.create(
            conn, store.id, body.scopes, body.label, home_page, authority=body.authority, expires=body.expires
        )
        await audit.record(
            conn,
            who.key,
            "credential.create",
            name,
            new.credential.key,
            {
                "scopes": body.scopes,
                "label": body.label,
                "expires": body.expires.isoformat() if body.expires else None,
            },
        )
        return new

    new = await _write(request, work)
    return CredentialCreated(**CredentialOut.of(new.credential).model_dump(), secret=new.secret)


@router.get(
    "/stores/{name}/credentials/{key}",
    response_model=CredentialOut,
    responses=_ERRORS,
    summary="One credential",
)
async def get_credential(name: str, key: str, request: Request, who: CallerDep) -> CredentialOut:
    _admin(who)

    async def work(conn: AsyncConnection) -> credential_store.Credential:
        return await _credential_in(conn, await _store(conn, name), key)

    return CredentialOut.of(await database(request).read(work))


@router.post(
    "/stores/{name}/credentials/{key}/rotate",
    response_model=SecretOut,
    responses=_ERRORS,
    summary="Give a credential a new secret",
)
async def rotate_credential(name: str, key: str, request: Request, who: CallerDep) -> SecretOut:
    _admin(who)

    async def work(conn: AsyncConnection) -> str:
        await _credential_in(conn, await _store(conn, name), key)
        secret = await credential_store.rotate(conn, key)
        if secret is None:
            raise Conflict(f"credential {key!r} is revoked")
        await audit.record(conn, who.key, "credential.rotate", name, key)
        return secret

    return SecretOut(key=key, secret=await _write(request, work))


@router.delete(
    "/stores/{name}/credentials/{key}",
    status_code=204,
    responses=_ERRORS,
    summary="Revoke a credential, at once on every server process",
)
async def revoke_credential(name: str, key: str, request: Request, who: CallerDep) -> Response:
    _admin(who)

    async def work(conn: AsyncConnection) -> None:
        await _credential_in(conn, await _store(conn, name), key)
        await credential_store.revoke(conn, key)
        await audit.record(conn, who.key, "credential.revoke", name, key)

    await _write(request, work)
    request.app.state.authenticator.forget(key)
    return Response(status_code=204)


# --- audit ------------------------------------------------------------------------------------


@router.get(
    "/audit", response_model=list[AuditOut], responses=_ERRORS, summary="The audit trail, newest first"
)
async def read_audit(
    request: Request,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="Entries older than this id")] = None,
    store: Annotated[str | None, Query(description="Only entries about this store")] = None,
) -> list[AuditOut]:
    _admin(who)
    entries = await database(request).read(lambda conn: audit.read(conn, limit, before, store))
    return [AuditOut.model_validate(e) for e in entries]
