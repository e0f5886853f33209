"""The HTTP API (FastAPI): ``POST /v1/recommend``, ``GET /v1/models``, ``GET /healthz``.

Errors: an unknown user or item id is 404 naming it; a malformed body or a value out of bounds
(k, the number of cold-start interactions) is 422 from the schema; a body over ``max_body_bytes``
is 413; a wrong or missing API key (when one is configured) is 401. Scoring runs in a worker
thread, so a slow client or a long request never blocks the event loop.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from llmrec.serve.recommender import NotSupported, Recommender, UnknownId

MAX_K = 100
MAX_INTERACTIONS = 1000


class RecommendRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=256)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    interactions: list[str] | None = Field(None, max_length=MAX_INTERACTIONS,
                                           description="item ids of a user unknown to the model (cold start)")


class Recommendation(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    user_id: str
    model: str
    items: list[Recommendation]


def create_app(recommender: Recommender, *, api_key: str | None = None, max_body_bytes: int = 64 * 1024) -> FastAPI:
    app = FastAPI(title="llmrec", version="0.1.0",
                  description="LLM-free recommendations from a trained llmrec backbone")
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def check_key(key: str | None = Depends(header)) -> None:
        if api_key is not None and not (key and hmac.compare_digest(key, api_key)):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > max_body_bytes):
            return JSONResponse({"detail": f"request body over {max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    def models() -> dict[str, Any]:
        return {"recommender": recommender.info}

    @app.post("/v1/recommend", response_model=RecommendResponse, dependencies=[Depends(check_key)])
    async def recommend(req: RecommendRequest) -> dict[str, Any]:
        try:
            items = await run_in_threadpool(recommender.recommend, req.user_id, req.k,
                                            exclude_seen=req.exclude_seen, interactions=req.interactions)
        except UnknownId as exc:
            raise HTTPException(404, str(exc)) from None
        except NotSupported as exc:
            raise HTTPException(422, str(exc)) from None
        return {"user_id": req.user_id, "model": recommender.name, "items": items}

    return app
