"""The OpenAI Batch API through the gateway: ``POST /v1/files`` (``purpose=batch``),
``GET /v1/files/{id}`` and ``.../content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel`` and ``GET /v1/batches`` (the rules: gateway/batches.py).

The provider is chosen by the file: its lines' ``body.model`` are resolved at upload and must
name models of one OpenAI-kind provider, which gets the file with its own model ids. A batch
over that file is created at that provider. The output and error files a batch names become
its tenant's as a retrieval shows them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from meterline.asgi.responses import JsonResponse
from meterline.errors import InvalidInput
from meterline.gateway import batches as common
from meterline.gateway.batch_bills import Result, bill_once, jsonl_objects
from meterline.gateway.calls import Form, parse_form
from meterline.gateway.state import GatewayState
from meterline.providers.usage import read_response_usage
from meterline.store import batches as store
from meterline.store.batches import StoredBatch, StoredFile

#: Batch line url -> the gateway endpoint whose usage reader and worst case it takes.
URLS: Final[Mapping[str, str]] = {"/v1/chat/completions": "chat", "/v1/responses": "responses",
                                  "/v1/embeddings": "embeddings"}
#: A batch that has ended, and whose output (if any) can be billed.
ENDED: Final = frozenset({"completed", "cancelled", "expired"})
HEADER: Final = "x-meterline-billed-lines"


async def _send(state: GatewayState, request: Request, provider: str, method: str, path: str,
                content: bytes = b"", content_type: str | None = None,
                params: Mapping[str, str] | None = None) -> tuple[int, bytes, str]:
    config = state.router.providers[provider]
    headers = state.upstreams.headers(config, request.headers, content_type)
    async with state.upstreams.stream(config, method, path, content=content, headers=headers,
                                      params=params) as answer:
        raw = await answer.aread()
        return answer.status_code, raw, answer.headers.get("content-type", "application/json")


def _lines(content: bytes, resolver: common.Resolver
           ) -> tuple[bytes, dict[str, dict[str, Any]]]:
    """The file as the provider gets it (its model ids), and what is kept of each line."""
    seen: set[str] = set()
    out: list[bytes] = []
    kept: dict[str, dict[str, Any]] = {}
    url: str | None = None
    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"file: line {number}"
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidInput(f"{where} is not JSON", field="file") from None
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            raise InvalidInput(f"{where}: needs custom_id, method, url and a body object",
                               field="file")
        custom_id = common.custom_id_of(item.get("custom_id"), seen, where)
        if item.get("method", "POST") != "POST" or item.get("url") not in URLS:
            raise InvalidInput(f"{where}: method POST and url one of {', '.join(URLS)}",
                               field="file")
        if url is not None and item["url"] != url:
            raise InvalidInput(f"{where}: url {item['url']} differs from the first line's "
                               f"{url}: a batch has one endpoint", field="file")
        url = item["url"]
        body = item["body"]
        model, upstream = resolver.resolve(body.get("model"), f"{where}.body")
        kept[custom_id] = common.line_info(body["model"], model, URLS[url], body,
                                           "openai") | {"url": url}
        out.append(orjson.dumps({**item, "body": {**body, "model": upstream}}))
    if not kept:
        raise InvalidInput("file: no request lines", field="file")
    if len(kept) > common.MAX_LINES:
        raise InvalidInput(f"file: more than {common.MAX_LINES} lines", field="file")
    return b"\n".join(out) + b"\n", kept


def _with_file(form: Form, name: str, content: bytes) -> tuple[bytes, str]:
    delimiter = b"--" + form.boundary
    out: list[bytes] = []
    for part in form.parts:
        value = content if part.name == name and part.filename is not None else part.value
        out += [delimiter, b"\r\n", part.head, b"\r\n\r\n", value, b"\r\n"]
    out += [delimiter, b"--\r\n"]
    return b"".join(out), f"multipart/form-data; boundary={form.boundary.decode()}"


async def upload(state: GatewayState, request: Request) -> Response:
    who = await common.owner(state, request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("body: a file upload is multipart/form-data", field="body")
    form = parse_form(await request.body(), content_type)
    fields = form.fields
    if fields.get("purpose") != "batch":
        raise InvalidInput("purpose: the gateway takes files for batches only (purpose=batch)",
                           field="purpose")
    file = next((p for p in form.parts if p.name == "file" and p.filename is not None), None)
    if file is None:
        raise InvalidInput("file: missing", field="file")
    resolver = common.Resolver(state, who.key, "openai")
    content, lines = _lines(file.value, resolver)
    assert resolver.provider is not None
    body, kind = _with_file(form, "file", content)
    status, raw, media = await _send(state, request, resolver.provider, "POST", "/files",
                                     body, kind)
    if status == 200:
        answer = orjson.loads(raw)
        await _keep_file(state, StoredFile(str(answer["id"]), who.key.tenant_id, who.key.id,
                                           who.user, resolver.provider, "batch",
                                           datetime.now(UTC), lines))
    return Response(raw, status, media_type=media)


async def _keep_file(state: GatewayState, file: StoredFile) -> None:
    engine = state.metering.engine

    def write() -> None:
        with engine.begin() as conn:
            store.remember_file(conn, file)

    await run_in_threadpool(write)


async def _file(state: GatewayState, who: common.Owner, file_id: str) -> StoredFile:
    return await common.owned(state, who, lambda conn: store.find_file(conn, file_id),
                              f"file {file_id!r}", "file_id")


async def file(state: GatewayState, request: Request, content: bool) -> Response:
    who = await common.owner(state, request)
    found = await _file(state, who, request.path_params["file_id"])
    path = f"/files/{found.file_id}" + ("/content" if content else "")
    status, raw, media = await _send(state, request, found.provider, "GET", path)
    return Response(raw, status, media_type=media)


async def create(state: GatewayState, request: Request) -> Response:
    started = datetime.now(UTC)
    who = await common.owner(state, request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(body, dict) or not isinstance(body.get("input_file_id"), str):
        raise InvalidInput("input_file_id: missing", field="input_file_id")
    found = await _file(state, who, body["input_file_id"])
    if found.lines is None:
        raise InvalidInput("input_file_id: not a batch input uploaded through the gateway",
                           field="input_file_id")
    urls = {line["url"] for line in found.lines.values()}
    if body.get("endpoint") not in urls:
        raise InvalidInput(f"endpoint: the file's lines are for {', '.join(sorted(urls))}",
                           field="endpoint")
    # The key creating the batch may not be the one that uploaded its file.
    resolver = common.Resolver(state, who.key, "openai")
    for custom_id, line in found.lines.items():
        resolver.resolve(line["requested"], f"file line {custom_id!r}")
    await common.check_limits(state, who, found.provider, found.lines, started)
    status, raw, media = await _send(state, request, found.provider, "POST", "/batches",
                                     await request.body(), "application/json")
    if status == 200:
        answer = orjson.loads(raw)
        await common.remember(state, StoredBatch(
            str(answer["id"]), "openai", who.key.tenant_id, who.key.id, who.user,
            found.provider, found.file_id, started,
            await common.pending(state, who, found.lines)))
    return Response(raw, status, media_type=media)


async def one(state: GatewayState, request: Request, cancel: bool) -> Response:
    who = await common.owner(state, request)
    batch = await common.find_batch(state, who, request.path_params["batch_id"])
    if cancel:
        status, raw, media = await _send(state, request, batch.provider, "POST",
                                         f"/batches/{batch.batch_id}/cancel")
    else:
        status, raw, media = await _send(state, request, batch.provider, "GET",
                                         f"/batches/{batch.batch_id}")
    out = Response(raw, status, media_type=media)
    if status == 200:
        billed = await _settle(state, request, batch, orjson.loads(raw))
        if billed is not None:
            out.headers[HEADER] = str(billed)
    return out


async def _settle(state: GatewayState, request: Request, batch: StoredBatch,
                  answer: Mapping[str, Any]) -> int | None:
    """Keep the files a batch names as its tenant's; bill it if it has ended."""
    for name in ("output_file_id", "error_file_id"):
        file_id = answer.get(name)
        if isinstance(file_id, str) and file_id:
            await _keep_file(state, StoredFile(file_id, batch.tenant_id, batch.key_id,
                                               batch.user_id, batch.provider, "batch_output",
                                               datetime.now(UTC), None))
    if answer.get("status") not in ENDED or batch.billed_at is not None:
        return None
    output = answer.get("output_file_id")

    async def fetch() -> Iterable[Result] | None:
        if not isinstance(output, str) or not output:
            return []  # nothing succeeded: nothing to bill
        status, raw, _ = await _send(state, request, batch.provider, "GET",
                                     f"/files/{output}/content")
        return _results(raw) if status == 200 else None

    return await bill_once(state, batch, fetch)


def _results(raw: bytes) -> list[Result]:
    out: list[Result] = []
    for item in jsonl_objects(raw):
        response = item.get("response")
        if not isinstance(response, dict) or response.get("status_code") != 200:
            continue  # an errored line is not billed
        body = response.get("body")
        if isinstance(body, dict) and isinstance(item.get("custom_id"), str):
            out.append(Result(item["custom_id"], read_response_usage("openai", body), body))
    return out


async def listing(state: GatewayState, request: Request) -> Response:
    who = await common.owner(state, request)
    params = request.query_params
    limit = page_limit(params.get("limit"))
    engine = state.metering.engine

    def load() -> tuple[list[StoredBatch], bool]:
        with engine.connect() as conn:
            return store.list_batches(conn, who.key.tenant_id, "openai", who.key.user_id,
                                      after=params.get("after"), limit=limit)

    rows, more = await run_in_threadpool(load)

    async def fetched(batch: StoredBatch) -> dict[str, Any] | None:
        status, raw, _ = await _send(state, request, batch.provider, "GET",
                                     f"/batches/{batch.batch_id}")
        if status != 200:
            return None
        answer: dict[str, Any] = orjson.loads(raw)
        await _settle(state, request, batch, answer)
        return answer

    data = [a for a in await asyncio.gather(*(fetched(b) for b in rows)) if a is not None]
    return JsonResponse({"object": "list", "data": data,
                         "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": more})


def page_limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise InvalidInput("limit: a whole number from 1 to 100", field="limit")
    return int(value)
