"""The admin API: stores, their settings and credentials, and the audit trail.

Every route needs a credential with the ``admin`` scope. Every change is written to the
audit trail in the same transaction.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from lrs.admin.models import (
    AuditOut,
    CredentialCreated,
    CredentialIn,
    PersonIn,
    RegionChange,
    RegionCredentialIn,
    RegionCredentialOut,
    RegionIn,
    RegionOut,
    SecretOut,
    StoreIn,
    StoreOut,
)
from lrs.api.auth import CallerDep
from lrs.api.services import ServicesDep
from lrs.config import StoreSettings
from lrs.ops import audit as audit_ops
from lrs.ops import credentials as credential_ops
from lrs.ops import forwarding, persons, pulls, regions, retention, transfer
from lrs.ops import stores as store_ops
from lrs.ops.caller import Caller
from lrs.ops.credentials import CredentialOut
from lrs.ops.forwarding import DeadOut, RuleChange, RuleOut, RuleSpec
from lrs.ops.pulls import SourceOut, SourceSpec
from lrs.scopes import ADMIN
from lrs.xapi.errors import BadRequest
from lrs.xapi.timestamps import parse_timestamp

router = APIRouter(prefix="/admin", tags=["Admin"])

_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "The credential lacks the `admin` scope"},
    404: {"description": "No such store or credential"},
}


def _admin(who: Caller) -> str:
    """The actor recorded in the audit trail, once the caller is known to be an admin."""
    who.require(ADMIN)
    return who.key


# --- stores -----------------------------------------------------------------------------------


@router.get("/stores", response_model=list[StoreOut], responses=_ERRORS, summary="List stores")
async def list_stores(app: ServicesDep, who: CallerDep) -> list[StoreOut]:
    _admin(who)
    return [StoreOut.of(s) for s in await store_ops.list_all(app.db)]


@router.post("/stores", response_model=StoreOut, status_code=201, responses=_ERRORS, summary="Create a store")
async def create_store(body: StoreIn, app: ServicesDep, who: CallerDep) -> StoreOut:
    return StoreOut.of(await store_ops.create(app.db, _admin(who), body.name))


@router.get("/stores/{name}", response_model=StoreOut, responses=_ERRORS, summary="One store")
async def get_store(name: str, app: ServicesDep, who: CallerDep) -> StoreOut:
    _admin(who)
    return StoreOut.of(await store_ops.get(app.db, name))


@router.patch("/stores/{name}", response_model=StoreOut, responses=_ERRORS, summary="Rename a store")
async def rename_store(name: str, body: StoreIn, app: ServicesDep, who: CallerDep) -> StoreOut:
    return StoreOut.of(await store_ops.rename(app.db, _admin(who), name, body.name))


@router.delete(
    "/stores/{name}", status_code=204, responses=_ERRORS, summary="Delete a store and all its data"
)
async def delete_store(name: str, app: ServicesDep, who: CallerDep) -> Response:
    await store_ops.delete(app.db, _admin(who), name)
    return Response(status_code=204)


@router.get(
    "/stores/{name}/settings", response_model=StoreSettings, responses=_ERRORS, summary="A store's settings"
)
async def get_settings(name: str, app: ServicesDep, who: CallerDep) -> StoreSettings:
    _admin(who)
    return await store_ops.get_settings(app.db, name)


@router.put(
    "/stores/{name}/settings",
    response_model=StoreSettings,
    responses=_ERRORS,
    summary="Replace a store's settings",
)
async def put_settings(name: str, body: StoreSettings, app: ServicesDep, who: CallerDep) -> StoreSettings:
    return await store_ops.set_settings(app.db, app.settings, _admin(who), name, body)


# --- credentials ------------------------------------------------------------------------------


@router.get(
    "/stores/{name}/credentials",
    response_model=list[CredentialOut],
    responses=_ERRORS,
    summary="A store's credentials (never their secrets)",
)
async def list_credentials(name: str, app: ServicesDep, who: CallerDep) -> list[CredentialOut]:
    _admin(who)
    return [CredentialOut.of(c) for c in await credential_ops.list_for_store(app.db, name)]


@router.post(
    "/stores/{name}/credentials",
    response_model=CredentialCreated,
    status_code=201,
    responses=_ERRORS,
    summary="Create a credential; its secret is shown once",
)
async def create_credential(
    name: str, body: CredentialIn, app: ServicesDep, who: CallerDep
) -> CredentialCreated:
    new = await credential_ops.create(
        app.db,
        app.settings,
        _admin(who),
        name,
        body.scopes,
        body.label,
        authority=body.authority,
        expires=body.expires,
    )
    return CredentialCreated(**CredentialOut.of(new.credential).model_dump(), secret=new.secret)


@router.get(
    "/stores/{name}/credentials/{key}",
    response_model=CredentialOut,
    responses=_ERRORS,
    summary="One credential",
)
async def get_credential(name: str, key: str, app: ServicesDep, who: CallerDep) -> CredentialOut:
    _admin(who)
    return CredentialOut.of(await credential_ops.get(app.db, name, key))


@router.post(
    "/stores/{name}/credentials/{key}/rotate",
    response_model=SecretOut,
    responses=_ERRORS,
    summary="Give a credential a new secret",
)
async def rotate_credential(name: str, key: str, app: ServicesDep, who: CallerDep) -> SecretOut:
    secret = await credential_ops.rotate(app.db, _admin(who), key, store=name)
    return SecretOut(key=key, secret=secret)


@router.delete(
    "/stores/{name}/credentials/{key}",
    status_code=204,
    responses=_ERRORS,
    summary="Revoke a credential, at once on every server process",
)
async def revoke_credential(name: str, key: str, app: ServicesDep, who: CallerDep) -> Response:
    await credential_ops.revoke(app.db, _admin(who), key, store=name)
    # Every process drops it when the notification arrives; this one need not wait for it.
    app.authenticator.forget(key)
    return Response(status_code=204)


# --- moving data --------------------------------------------------------------------------------


def _instant(value: str | None, name: str) -> Any:
    if value is None:
        return None
    instant = parse_timestamp(value)
    if instant is None:
        raise BadRequest(f"{name}: {value!r} is not an ISO 8601 timestamp")
    return instant


@router.get(
    "/stores/{name}/export",
    response_class=StreamingResponse,
    responses={**_ERRORS, 200: {"content": {"application/x-ndjson": {}}, "description": "JSON Lines"}},
    summary="The store's statements (and documents, attachments) as JSON Lines, streamed",
)
async def export_store(
    name: str,
    app: ServicesDep,
    who: CallerDep,
    since: Annotated[str | None, Query(description="Only statements stored after this time")] = None,
    until: Annotated[str | None, Query(description="Only statements stored at or before this time")] = None,
    documents: Annotated[bool, Query(description="Add documents and activity definitions")] = False,
    attachments: Annotated[bool, Query(description="Add the attachments' bytes")] = False,
) -> StreamingResponse:
    actor = _admin(who)
    ask = transfer.ExportRequest(_instant(since, "since"), _instant(until, "until"), documents, attachments)
    await store_ops.get(app.db, name)  # a 404 now, before the stream starts
    return StreamingResponse(
        transfer.export(app.db, actor, name, ask),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
    )


async def _gunzipped(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        async for chunk in chunks:
            yield inflate.decompress(chunk)
        yield inflate.flush()
    except zlib.error as exc:
        raise BadRequest(f"body: not valid gzip ({exc})") from exc


@router.post(
    "/stores/{name}/import",
    responses={
        **_ERRORS,
        400: {"description": "The import stopped at a bad line (earlier batches stay stored)"},
        413: {"description": "Larger than LRS_MAX_BODY_BYTES: use `lrs import`"},
    },
    summary="Read JSON Lines (an export, or statements) into the store; gzip with Content-Encoding",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def import_store(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    on_error: Annotated[
        Literal["stop", "skip"], Query(description="At a bad line: stop there, or skip it and go on")
    ] = "stop",
) -> JSONResponse:
    actor = _admin(who)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", "gzip"):
        raise BadRequest(f"Content-Encoding: {encoding!r} is not supported; send gzip or nothing")
    body = request.stream()
    chunks = _gunzipped(body) if encoding == "gzip" else body
    report = await transfer.import_lines(
        app.db, app.settings, actor, name, chunks, authority=who.authority, on_error=on_error
    )
    if report.stopped:
        message = report.errors[-1][1]
        return JSONResponse(
            {"error": "Bad Request", "status": 400, "message": message, "report": report.as_dict()},
            status_code=400,
        )
    return JSONResponse(report.as_dict())


# --- forwarding -----------------------------------------------------------------------------------


@router.get(
    "/stores/{name}/forwarding",
    response_model=list[RuleOut],
    responses=_ERRORS,
    summary="The store's forwarding rules, with what each has waiting, sent and failed",
)
async def list_forwarding(name: str, app: ServicesDep, who: CallerDep) -> list[RuleOut]:
    _admin(who)
    return await forwarding.list_rules(app.db, app.settings, name)


@router.post(
    "/stores/{name}/forwarding",
    response_model=RuleOut,
    status_code=201,
    responses={**_ERRORS, 409: {"description": "A rule of that name exists"}},
    summary="Forward the store's matching statements to another LRS (from now on)",
)
async def create_forwarding(name: str, body: RuleSpec, app: ServicesDep, who: CallerDep) -> RuleOut:
    return await forwarding.create(app.db, app.settings, _admin(who), name, body)


@router.get("/stores/{name}/forwarding/{rule}", response_model=RuleOut, responses=_ERRORS, summary="One rule")
async def get_forwarding(name: str, rule: str, app: ServicesDep, who: CallerDep) -> RuleOut:
    _admin(who)
    return await forwarding.get(app.db, app.settings, name, rule)


@router.patch(
    "/stores/{name}/forwarding/{rule}",
    response_model=RuleOut,
    responses=_ERRORS,
    summary="Change a rule (target, credentials, filter, enabled); it is tried again at once",
)
async def change_forwarding(
    name: str, rule: str, body: RuleChange, app: ServicesDep, who: CallerDep
) -> RuleOut:
    return await forwarding.change(app.db, app.settings, _admin(who), name, rule, body)


@router.delete(
    "/stores/{name}/forwarding/{rule}",
    status_code=204,
    responses=_ERRORS,
    summary="Delete a rule and what it still had to send",
)
async def delete_forwarding(name: str, rule: str, app: ServicesDep, who: CallerDep) -> Response:
    await forwarding.delete(app.db, _admin(who), name, rule)
    return Response(status_code=204)


@router.get(
    "/stores/{name}/forwarding/{rule}/dead",
    response_model=list[DeadOut],
    responses=_ERRORS,
    summary="Batches the target refused too often, with the last error",
)
async def list_dead(name: str, rule: str, app: ServicesDep, who: CallerDep) -> list[DeadOut]:
    _admin(who)
    return await forwarding.dead_letters(app.db, name, rule)


@router.post(
    "/stores/{name}/forwarding/{rule}/dead/{dead_id}/retry",
    status_code=204,
    responses=_ERRORS,
    summary="Send a dead letter's statements again",
)
async def retry_dead(name: str, rule: str, dead_id: int, app: ServicesDep, who: CallerDep) -> Response:
    await forwarding.retry(app.db, _admin(who), name, rule, dead_id)
    return Response(status_code=204)


@router.delete(
    "/stores/{name}/forwarding/{rule}/dead/{dead_id}",
    status_code=204,
    responses=_ERRORS,
    summary="Give up on a dead letter",
)
async def drop_dead(name: str, rule: str, dead_id: int, app: ServicesDep, who: CallerDep) -> Response:
    await forwarding.drop(app.db, _admin(who), name, rule, dead_id)
    return Response(status_code=204)


# --- pulling --------------------------------------------------------------------------------------


@router.get(
    "/stores/{name}/pulls",
    response_model=list[SourceOut],
    responses=_ERRORS,
    summary="Other LRSs the store pulls statements from, and how far each has got",
)
async def list_pulls(name: str, app: ServicesDep, who: CallerDep) -> list[SourceOut]:
    _admin(who)
    return await pulls.list_sources(app.db, app.settings, name)


@router.post(
    "/stores/{name}/pulls",
    response_model=SourceOut,
    responses=_ERRORS,
    summary="Add (or change) a source; with every_seconds the background worker pulls it on schedule",
)
async def save_pull(name: str, body: SourceSpec, app: ServicesDep, who: CallerDep) -> SourceOut:
    return await pulls.save_source(app.db, app.settings, _admin(who), name, body)


@router.post(
    "/stores/{name}/pulls/{source}/run",
    responses=_ERRORS,
    summary="Pull now, until the other LRS has nothing newer (large first pulls: `lrs pull`)",
)
async def run_pull(name: str, source: str, app: ServicesDep, who: CallerDep) -> dict[str, Any]:
    report = await pulls.run(app.db, app.settings, _admin(who), name, source)
    return report.as_dict()


@router.delete("/stores/{name}/pulls/{source}", status_code=204, responses=_ERRORS, summary="Forget a source")
async def delete_pull(name: str, source: str, app: ServicesDep, who: CallerDep) -> Response:
    await pulls.delete_source(app.db, _admin(who), name, source)
    return Response(status_code=204)


# --- audit ------------------------------------------------------------------------------------


# --- personal data (GDPR) ---------------------------------------------------------------------


@router.post(
    "/stores/{name}/persons/export",
    response_class=StreamingResponse,
    responses={**_ERRORS, 200: {"content": {"application/zip": {}}, "description": "A ZIP archive"}},
    summary="Everything the store holds about a person, as one archive (GDPR Article 15)",
)
async def export_person(name: str, person: PersonIn, app: ServicesDep, who: CallerDep) -> StreamingResponse:
    actor = _admin(who)
    copy = await persons.export(app.db, actor, name, person.agents)
    return StreamingResponse(
        _chunks(copy.file),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}-person.zip"'},
    )


async def _chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := file.read(1 << 16):
            yield chunk
    finally:
        file.close()


@router.post(
    "/stores/{name}/persons/erase",
    responses=_ERRORS,
    summary="Erase a person from the store (GDPR Article 17), or with dry_run see what would go",
)
async def erase_person(
    name: str,
    person: PersonIn,
    app: ServicesDep,
    who: CallerDep,
    dry_run: Annotated[bool, Query(description="Only report what would be removed")] = False,
) -> dict[str, Any]:
    actor = _admin(who)
    receipt = await persons.erase(app.db, app.settings, actor, name, person.agents, dry_run=dry_run)
    return receipt.as_dict()


@router.get(
    "/stores/{name}/retention",
    responses={**_ERRORS, 409: {"description": "The store has no retention period"}},
    summary="What the next retention run would delete (a dry run)",
)
async def retention_plan(name: str, app: ServicesDep, who: CallerDep) -> dict[str, Any]:
    actor = _admin(who)
    return (await retention.run(app.db, app.settings, actor, name, dry_run=True)).as_dict()


@router.post(
    "/stores/{name}/retention/run",
    responses={**_ERRORS, 409: {"description": "The store has no retention period"}},
    summary="Delete the statements past the store's retention period now",
)
async def retention_run(name: str, app: ServicesDep, who: CallerDep) -> dict[str, Any]:
    actor = _admin(who)
    return (await retention.run(app.db, app.settings, actor, name)).as_dict()


# --- regions ----------------------------------------------------------------------------------


@router.get("/regions", response_model=list[RegionOut], responses=_ERRORS, summary="List regions")
async def list_regions(app: ServicesDep, who: CallerDep) -> list[RegionOut]:
    _admin(who)
    return [RegionOut.model_validate(r) for r in await regions.list_all(app.db)]


@router.post(
    "/regions", response_model=RegionOut, status_code=201, responses=_ERRORS, summary="Create a region"
)
async def create_region(body: RegionIn, app: ServicesDep, who: CallerDep) -> RegionOut:
    actor = _admin(who)
    return RegionOut.model_validate(await regions.create(app.db, actor, body.name, body.min_group_size))


@router.get("/regions/{name}", response_model=RegionOut, responses=_ERRORS, summary="One region")
async def get_region(name: str, app: ServicesDep, who: CallerDep) -> RegionOut:
    _admin(who)
    return RegionOut.model_validate(await regions.get(app.db, name))


@router.patch("/regions/{name}", response_model=RegionOut, responses=_ERRORS, summary="Change a region")
async def change_region(name: str, body: RegionChange, app: ServicesDep, who: CallerDep) -> RegionOut:
    actor = _admin(who)
    changed = await regions.set_min_group_size(app.db, actor, name, body.min_group_size)
    return RegionOut.model_validate(changed)


@router.delete("/regions/{name}", status_code=204, responses=_ERRORS, summary="Delete a region")
async def delete_region(name: str, app: ServicesDep, who: CallerDep) -> Response:
    actor = _admin(who)
    await regions.delete(app.db, actor, name)
    return Response(status_code=204)


@router.put(
    "/regions/{name}/stores/{store}",
    response_model=RegionOut,
    responses={**_ERRORS, 409: {"description": "The store's setting region_sharing does not allow it"}},
    summary="A store joins the region (only if its own setting allows sharing)",
)
async def join_region(name: str, store: str, app: ServicesDep, who: CallerDep) -> RegionOut:
    actor = _admin(who)
    return RegionOut.model_validate(await regions.join(app.db, actor, name, store))


@router.delete(
    "/regions/{name}/stores/{store}", response_model=RegionOut, responses=_ERRORS, summary="A store leaves"
)
async def leave_region(name: str, store: str, app: ServicesDep, who: CallerDep) -> RegionOut:
    actor = _admin(who)
    return RegionOut.model_validate(await regions.leave(app.db, actor, name, store))


@router.post(
    "/regions/{name}/credentials",
    response_model=RegionCredentialOut,
    status_code=201,
    responses=_ERRORS,
    summary="A credential that reads this region's aggregates, and nothing else",
)
async def create_region_credential(
    name: str, body: RegionCredentialIn, app: ServicesDep, who: CallerDep
) -> RegionCredentialOut:
    actor = _admin(who)
    new = await regions.create_credential(app.db, app.settings, actor, name, body.label)
    return RegionCredentialOut(
        key=new.credential.key, secret=new.secret, region=name, scopes=sorted(new.credential.scopes)
    )


@router.get(
    "/audit", response_model=list[AuditOut], responses=_ERRORS, summary="The audit trail, newest first"
)
async def read_audit(
    app: ServicesDep,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="Entries older than this id")] = None,
    store: Annotated[str | None, Query(description="Only entries about this store")] = None,
) -> list[AuditOut]:
    _admin(who)
    return [AuditOut.model_validate(e) for e in await audit_ops.read(app.db, limit, before, store)]
