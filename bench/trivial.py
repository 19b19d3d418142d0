"""The ceiling for our server stack: a FastAPI endpoint that does nothing, under uvicorn."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/xapi/statements")
async def statements(request: Request) -> Response:
    await request.body()
    return Response(b"[]", media_type="application/json")
