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
    matches: dict[str, list[str]] = Field(
        description="names in the explanation, by the faithfulness metrics' matching: from its evidence, the "
                    "item's own title, and catalogue titles in neither (hallucinated)")
    generated_tokens: int
    batch_size: int = Field(description="requests that shared this generation")


class UserMatch(BaseModel):
    user_id: str
    match: str = Field(description="'id', or the history title that contains the query")


class UserSearchResponse(BaseModel):
    users: list[UserMatch]


class HistoryItem(BaseModel):
    item_id: str
    title: str
    behaviours: list[str]
    time: int | None
    split: str = Field(description="train, valid or test (the data layer's split of this interaction)")


class Interests(BaseModel):
    phrases: list[str]
    status: str = Field(description="ok, repaired, fallback, inherited (from the cluster's representative), no_text")
    representative: str | None
    answer: str = Field(description="status of the LLM answer the phrases come from (the representative's)")
    fallback: bool = Field(description="true when the phrases are the recorded fallback, not a valid LLM answer")


class TokenGloss(BaseModel):
    position: str
    code: int
    phrases: list[str] = Field(description="intention phrases nearest the token's codeword")


class UserView(BaseModel):
    user_id: str
    history: list[HistoryItem]
    interests: Interests
    tokens: list[TokenGloss]


class CounterfactualRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(48, ge=1, le=MAX_TOKENS)


class CounterfactualResponse(ExplainResponse):
    donor: dict[str, str] = Field(description="the pair whose evidence and tokens the text was given instead "
                                              "(it shares neither the user nor the item)")


def create_app(recommender: Recommender | None = None, explainer: Explainer | None = None, *,
               explorer: Any = None, api_key: str | None = None, max_body_bytes: int = 64 * 1024, max_batch: int = 32,
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

    if explorer is not None:
        _explorer_routes(app, explorer, batcher, check_key)
    return app


def _explorer_routes(app: FastAPI, view: Any, batcher: MicroBatcher, check_key: Any) -> None:
    """The endpoints the explanation explorer reads, and its page (``/explore``; no data in the page
    itself, so it needs no key: its requests carry one)."""
    from importlib.resources import files

    from fastapi import Query
    from fastapi.responses import Response

    static = files("llmrec.serve") / "static"
    kinds = {"explore.js": "text/javascript", "explore.css": "text/css"}

    @app.get("/explore", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (static / "explore.html").read_text()

    @app.get("/explore/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in kinds:
            raise HTTPException(404, f"no asset {name!r}")
        return Response((static / name).read_text(), media_type=kinds[name])

    @app.get("/v1/users", response_model=UserSearchResponse, dependencies=[Depends(check_key)])
    def search(q: str = Query(min_length=1, max_length=200), limit: int = Query(20, ge=1, le=100)) -> dict:
        return {"users": view.search(q, limit)}

    @app.get("/v1/users/{user_id}", response_model=UserView, dependencies=[Depends(check_key)])
    def user(user_id: str) -> dict:
        try:
            return {"user_id": user_id, "history": view.history(user_id), "interests": view.user_interests(user_id),
                    "tokens": view.tokens(user_id)}
        except UnknownId as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/v1/explain/counterfactual", response_model=CounterfactualResponse, dependencies=[Depends(check_key)])
    async def counterfactual(req: CounterfactualRequest) -> dict[str, Any]:
        try:
            q, donor = view.counterfactual_query(ExplainQuery(req.user_id, req.item_id, max_tokens=req.max_tokens))
            out = await batcher.submit(await run_in_threadpool(view.ex.resolve, q))
        except UnknownId as exc:
            raise HTTPException(404, str(exc)) from None
        except QueueFull as exc:
            raise HTTPException(503, str(exc)) from None
        return {**out, "user_id": req.user_id, "item_id": req.item_id, "donor": donor, "model": view.ex.name}
