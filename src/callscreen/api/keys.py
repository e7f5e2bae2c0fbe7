"""``/keys``: API keys managed over the API (scope ``keys:admin``; the first key is
always made with ``callscreen apikeys create``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from callscreen.api.auth import Principal, scoped
from callscreen.api.models import ERRORS, KeyCreate, KeyCreated, KeyOut
from callscreen.services.apikeys import KeyScope

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERRORS)

Admin = Annotated[Principal, Depends(scoped(KeyScope.KEYS_ADMIN))]
KeyName = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("", status_code=201, response_model=KeyCreated, summary="Make a key (shown once)")
async def create_key(body: KeyCreate, who: Admin) -> dict[str, Any]:
    key, secret = await who.backend.create_key(
        body.name, [s.value for s in body.scopes], body.lists, body.expires
    )
    return {**key.to_json(), "key": secret}


@router.get("", response_model=list[KeyOut], summary="Every key (never the keys themselves)")
async def list_keys(who: Admin) -> list[dict[str, Any]]:
    return [key.to_json() for key in await who.backend.list_keys()]


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Revoke a key: refused from its next request on",
)
async def revoke_key(name: KeyName, who: Admin) -> Response:
    await who.backend.revoke_key(name)
    return Response(status_code=204)
