"""Request hygiene for the HTTP API: a hard body limit, validation errors that do not echo the
input, and an API page that needs no CDN."""

from __future__ import annotations

import html
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """413 for a body over ``max_bytes``: by its content-length header, or counted while it streams
    in (chunked requests carry no length; their body is read up to the limit, then handed on).
    Pure ASGI, so nothing over the limit is ever buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        size = headers.get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.max_bytes):
            return await self._reject(send)
        if size is not None:
            return await self.app(scope, receive, send)
        # chunked: read the body up to the limit first, then replay it to the app
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)  # client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                return await self._reject(send)
            more = message.get("more_body", False)
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}],
                                      receive), send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive() that hands out ``messages`` first, then defers to ``then`` (disconnects)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def short_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors without ``input`` / ``ctx`` (they repeat what the client sent, up to the
    whole body): field location, message and type only."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type", "")}
            for e in errors[:20]]


def docs_page(spec: dict[str, Any]) -> str:
    """The OpenAPI schema as one plain HTML page: routes, their request fields and limits."""
    schemas = spec.get("components", {}).get("schemas", {})
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                   .get("schema", {}).get("$ref", ""))
            fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            items = "".join(
                f"<li><code>{html.escape(name)}</code> {html.escape(_type(f))}"
                f"{html.escape(' - ' + f['description']) if f.get('description') else ''}</li>"
                for name, f in fields.items())
            rows.append(f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                        f"<p>{html.escape(op.get('summary', ''))}</p>{'<ul>' + items + '</ul>' if items else ''}"
                        "</section>")
    title = html.escape(spec.get("info", {}).get("title", "API"))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title} API</title></head><body>"
            f"<h1>{title} API</h1><p>{html.escape(spec.get('info', {}).get('description', ''))}</p>"
            "<p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a>. This page is rendered by the "
            "server: the usual Swagger UI needs a CDN, which offline hosts cannot reach.</p>"
            + "".join(rows) + "</body></html>")


def _type(field: dict[str, Any]) -> str:
    if "anyOf" in field:
        return " | ".join(_type(f) for f in field["anyOf"])
    kind = field.get("type", field.get("$ref", "").rsplit("/", 1)[-1] or "any")
    limits = [f"{k}={field[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "maxItems") if k in field]
    return f"{kind}{' (' + ', '.join(limits) + ')' if limits else ''}"
