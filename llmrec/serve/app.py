"""The HTTP API (FastAPI): ``POST /v1/recommend`` (a trained backbone, no LLM), ``POST
/v1/explain`` (a stage-2 run: frozen LLM reading behaviour tokens), ``GET /v1/models``, ``GET
/v1/stats``, ``GET /healthz``. Each POST route exists when its model is loaded.

Errors: an unknown user or item id is 404 naming it; a malformed body or a value out of bounds
(k, max_tokens, the number of cold-start interactions, text or id length) is 422 from the schema,
naming the field and never echoing the input; a body over ``max_body_bytes`` is 413 (with or
without a content-length header); a wrong or missing API key (when one is configured) is 401;
a full explanation queue is 503. Scoring and generation run in worker threads, so a slow client
or a long request never blocks the event loop; explanations go through the micro-batcher.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from llmrec.serve.batcher import MicroBatcher, QueueFull
from llmrec.serve.guard import BodyLimit, docs_page, short_errors
from llmrec.serve.explainer import Explainer, ExplainQuery
from llmrec.serve.recommender import NotSupported, Recommender, UnknownId

MAX_K = 100
MAX_INTERACTIONS = 1000
MAX_TOKENS = 256
MAX_TEXT = 4000


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


class ExplainRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(48, ge=1, le=MAX_TOKENS)
    user_interactions: list[str] | None = Field(None, max_length=MAX_INTERACTIONS,
                                                description="cold start: item ids of a user the tokenizer never saw")
    user_text: str | None = Field(None, max_length=MAX_TEXT, description="cold start: a new user's text")
    item_interactions: list[str] | None = Field(None, max_length=MAX_INTERACTIONS,
                                                description="cold start: user ids of an item the tokenizer never saw")
    item_text: str | None = Field(None, max_length=MAX_TEXT, description="cold start: a new item's text")
    item_title: str | None = Field(None, max_length=512, description="a new item's title for the prompt")


class ExplainResponse(BaseModel):
    user_id: str
    item_id: str
    model: str
    explanation: str
    title: str
    behaviour_tokens: dict[str, dict[str, int]] | None = Field(
        description="stage-1 codes per token position of the user and the item (null: the variant reads none)")
    cold_start: list[str] = Field(description="sides whose tokens came from the request's evidence")
    evidence: dict[str, Any] | None = Field(
        None, description="what the explanation was given (evidence variants): history titles nearest the item, "
                          "token glosses, interests, fallback flag and the text shown to the LLM")
    generated_tokens: int
    batch_size: int = Field(description="requests that shared this generation")


def create_app(recommender: Recommender | None = None, explainer: Explainer | None = None, *,
               api_key: str | None = None, max_body_bytes: int = 64 * 1024, max_batch: int = 32,
               max_wait_ms: float = 10.0, max_queue: int = 256) -> FastAPI:
    """``max_batch=1`` turns micro-batching off (one generation per request)."""
    if recommender is None and explainer is None:
        raise ValueError("create_app needs a recommender, an explainer or both")
    batcher = (MicroBatcher(explainer.explain_batch, max_batch=max_batch, max_wait_ms=max_wait_ms,
                            max_queue=max_queue, name="explain") if explainer is not None else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if batcher is not None:
            await batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()

    # Swagger UI and ReDoc load their scripts from a CDN, which an offline or air-gapped host cannot
    # reach: /docs is a server-rendered page of the OpenAPI schema instead (no scripts at all)
    app = FastAPI(title="llmrec", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Recommendations from a trained llmrec backbone (LLM-free) and explanations "
                              "from a frozen LLM reading behaviour tokens")
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": short_errors(exc.errors())}, status_code=422)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return docs_page(app.openapi())
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def check_key(key: str | None = Depends(header)) -> None:
        if api_key is not None and not (key and hmac.compare_digest(key, api_key)):
            raise HTTPException(401, "missing or wrong X-API-Key header")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=[Depends(check_key)])
    def models() -> dict[str, Any]:
        return {"recommender": recommender.info if recommender else None,
                "explainer": explainer.info if explainer else None}

    @app.get("/v1/stats", dependencies=[Depends(check_key)])
    def stats() -> dict[str, Any]:
        return {"explain": batcher.stats() if batcher else None}

    if recommender is not None:
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

    if explainer is not None:
        @app.post("/v1/explain", response_model=ExplainResponse, dependencies=[Depends(check_key)])
        async def explain(req: ExplainRequest) -> dict[str, Any]:
            try:  # ids are checked before queueing, so a bad request never holds a batch slot
                resolved = await run_in_threadpool(explainer.resolve, ExplainQuery(**req.model_dump()))
                out = await batcher.submit(resolved)
            except UnknownId as exc:
                raise HTTPException(404, str(exc)) from None
            except NotSupported as exc:
                raise HTTPException(422, str(exc)) from None
            except QueueFull as exc:
                raise HTTPException(503, str(exc)) from None
            return {**out, "model": explainer.name}

    return app
