"""Batch APIs: OpenAI's files and batches (``/v1/files``, ``/v1/batches``) and Anthropic's
Message Batches (``/v1/messages/batches``).

A batch runs its lines when it finishes, with the same builders as the synchronous endpoints
(chat completions, Responses API, messages), so each line's ``[[sim ...]]`` directives decide
its usage, and ``status=N`` makes it an error line. Nothing waits on a clock: a batch finishes
at its ``polls=N``-th retrieval (the largest ``polls`` of its lines; the first by default),
``in_progress`` before. A cancelled batch ends at its next retrieval with its first half of
lines (rounded down) done and the rest cancelled, so partial output is deterministic.

OpenAI: results go to an output file (status 200 lines) and an error file (the others), read
with ``GET /v1/files/{id}/content``. Anthropic: ``GET .../results`` is JSONL of ``succeeded``,
``errored`` and ``canceled`` results; ``results_url`` names it once the batch has ended.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meterline.simulator.anthropic import _message, _texts, anthropic_error
from meterline.simulator.common import ErrorFn, SimState, authorized, block_texts, json_response
from meterline.simulator.directives import DirectiveError, Plan, generated_text, plan
from meterline.simulator.openai import _completion, openai_error, served_tier
from meterline.simulator.responses import _input_texts, _response

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_PARAM = re.compile(rb';\s*(name|filename)="([^"]*)"')
JSONL = "application/x-ndjson"


@dataclass
class _Batch:
    id: str
    api: str
    #: (custom_id, url, body) of each line, in order.
    lines: list[tuple[str, str, dict[str, Any]]]
    polls: int
    created: int
    object: dict[str, Any] = field(default_factory=dict)
    cancelling: bool = False
    #: (custom_id, kind, payload): "ok" with the answer, "error" with (status, message),
    #: "canceled".
    results: list[tuple[str, str, Any]] | None = None


def _text_plan(texts: list[str], max_tokens: object) -> Plan | tuple[int, str]:
    try:
        p = plan("\n".join(texts), max_tokens)
    except DirectiveError as exc:
        return 400, str(exc)
    return (p.directives.status, f"Simulated error (HTTP {p.directives.status}).") \
        if p.directives.status is not None else p


def _run_line(sim: SimState, url: str, body: dict[str, Any]) -> tuple[str, Any]:
    """One line's outcome, as the synchronous endpoint would answer it."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "error", (400, "You must provide a model parameter.")
    if url.endswith("/chat/completions"):
        texts: list[str] = []
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                block_texts(message.get("content"), texts)
        p = _text_plan(texts, body.get("max_completion_tokens", body.get("max_tokens")))
        if isinstance(p, tuple):
            return "error", p
        return "ok", _completion(sim.next_id("chatcmpl-"), model, p, served_tier(body))
    if url.endswith("/responses"):
        p = _text_plan(_input_texts(body), body.get("max_output_tokens"))
        if isinstance(p, tuple):
            return "error", p
        status = "incomplete" if p.truncated else "completed"
        return "ok", _response(sim.next_id("resp_"), model, p, status, generated_text(p.output))
    if url == "messages":
        p = _text_plan(_texts(body), body.get("max_tokens"))
        if isinstance(p, tuple):
            return "error", p
        return "ok", _message(sim.next_id("msg_"), model, p)
    return "error", (400, f"The batch simulator does not serve {url}.")


def _polls(lines: list[tuple[str, str, dict[str, Any]]]) -> int:
    found = 1
    for _, _, body in lines:
        for match in re.finditer(r"\[\[sim\b[^\]]*\bpolls=(\d+)", orjson.dumps(body).decode()):
            found = max(found, int(match.group(1)))
    return found


def _finish(sim: SimState, batch: _Batch) -> None:
    done = len(batch.lines) // 2 if batch.cancelling else len(batch.lines)
    batch.results = []
    for index, (custom_id, url, body) in enumerate(batch.lines):
        if index >= done:
            batch.results.append((custom_id, "canceled", None))
        else:
            kind, payload = _run_line(sim, url, body)
            batch.results.append((custom_id, kind, payload))


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def batches_routes(sim: SimState) -> list[Route]:
    files: dict[str, tuple[dict[str, Any], bytes]] = {}
    made: dict[str, _Batch] = {}

    def counted(request: Request, error: ErrorFn) -> Response | None:
        path = request.scope["path"]
        sim.requests[path] = sim.requests.get(path, 0) + 1
        sim.remember(request, None)
        if sim.require_key is not None and not authorized(request, sim.require_key):
            return error(401, "Incorrect or missing API key.")
        return None

    def new_file(content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = sim.next_id("file-")
        info = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed",
                "expires_at": None, "status_details": None}
        files[fid] = (info, content)
        return info

    # --- OpenAI files ----------------------------------------------------------------------

    async def upload(request: Request) -> Response:
        refused = counted(request, openai_error)
        if refused is not None:
            return refused
        fields, content, filename = _form(await request.body(),
                                          request.headers.get("content-type", ""))
        if content is None or fields.get("purpose") not in ("batch", "user_data"):
            return openai_error(400, "A file and purpose=batch are required.")
        return json_response(new_file(content, filename, fields["purpose"]))

    async def file_info(request: Request) -> Response:
        refused = counted(request, openai_error)
        if refused is not None:
            return refused
        found = files.get(request.path_params["fid"])
        if found is None:
            return openai_error(404, f"No such File object: {request.path_params['fid']}")
        if request.url.path.endswith("/content"):
            return Response(found[1], media_type=JSONL)
        return json_response(found[0])

    # --- OpenAI batches --------------------------------------------------------------------

    def openai_object(batch: _Batch) -> dict[str, Any]:
        out = batch.object
        if batch.results is None:
            return out
        ok = [r for r in batch.results if r[1] == "ok"]
        errors = [r for r in batch.results if r[1] == "error"]
        if out.get("output_file_id") is None and out.get("error_file_id") is None:
            def line(custom_id: str, status: int, body: Any) -> bytes:
                return orjson.dumps({"id": sim.next_id("batch_req_"), "custom_id": custom_id,
                                     "response": {"status_code": status,
                                                  "request_id": sim.next_id("req_"),
                                                  "body": body}, "error": None}) + b"\n"

            if ok:
                content = b"".join(line(c, 200, body) for c, _, body in ok)
                out["output_file_id"] = new_file(content, "batch_output.jsonl",
                                                 "batch_output")["id"]
            if errors:
                content = b"".join(line(c, status, orjson.loads(
                    openai_error(status, message).body)) for c, _, (status, message) in errors)
                out["error_file_id"] = new_file(content, "batch_errors.jsonl",
                                                "batch_output")["id"]
        now = int(time.time())
        final = "cancelled" if batch.cancelling else "completed"
        out.update(status=final, request_counts={"total": len(batch.lines), "completed": len(ok),
                                                 "failed": len(errors)})
        out[f"{final}_at"] = out.get(f"{final}_at") or now
        return out

    async def create_batch(request: Request) -> Response:
        refused = counted(request, openai_error)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return openai_error(400, "The request body is not valid JSON.")
        found = files.get(body.get("input_file_id") or "") if isinstance(body, dict) else None
        if found is None:
            return openai_error(400, "input_file_id: no such file.")
        lines = []
        for raw in found[1].splitlines():
            if raw.strip():
                item = orjson.loads(raw)
                lines.append((item["custom_id"], item["url"], item["body"]))
        bid, now = sim.next_id("batch_"), int(time.time())
        batch = _Batch(bid, "openai", lines, _polls(lines), now)
        batch.object = {
            "id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"), "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        made[bid] = batch
        return json_response(batch.object)

    def advance(batch: _Batch) -> None:
        """A retrieval: one poll closer to finished (a cancelled batch ends at the next)."""
        if batch.results is not None:
            return
        batch.polls -= 1
        if batch.polls <= 0 or batch.cancelling:
            _finish(sim, batch)
        elif batch.api == "openai":
            batch.object.update(status="in_progress", in_progress_at=batch.created)

    async def one_batch(request: Request) -> Response:
        refused = counted(request, openai_error)
        if refused is not None:
            return refused
        batch = made.get(request.path_params["bid"])
        if batch is None or batch.api != "openai":
            return openai_error(404, f"No batch found with id '{request.path_params['bid']}'.")
        if request.url.path.endswith("/cancel"):
            if batch.results is not None:
                return openai_error(400, f"Cannot cancel a batch with status "
                                         f"'{batch.object['status']}'.")
            batch.cancelling = True
            batch.object.update(status="cancelling", cancelling_at=int(time.time()))
            return json_response(batch.object)
        advance(batch)
        return json_response(openai_object(batch))

    async def list_openai(request: Request) -> Response:
        refused = counted(request, openai_error)
        if refused is not None:
            return refused
        data = [openai_object(b) for b in reversed(made.values()) if b.api == "openai"]
        return json_response({"object": "list", "data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})

    # --- Anthropic Message Batches ---------------------------------------------------------

    def anthropic_object(request: Request, batch: _Batch) -> dict[str, Any]:
        counts = {"processing": len(batch.lines), "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}
        out = batch.object
        if batch.results is not None:
            counts["processing"] = 0
            for _, kind, _ in batch.results:
                counts[{"ok": "succeeded", "error": "errored"}.get(kind, "canceled")] += 1
            base = str(request.base_url).rstrip("/")
            out.update(processing_status="ended", ended_at=out.get("ended_at") or _iso(
                int(time.time())), results_url=f"{base}/v1/messages/batches/{batch.id}/results")
        elif batch.cancelling:
            out["processing_status"] = "canceling"
        out["request_counts"] = counts
        return out

    async def create_message_batch(request: Request) -> Response:
        refused = counted(request, anthropic_error)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return anthropic_error(400, "The request body is not valid JSON.")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return anthropic_error(400, "requests: Field required")
        lines = [(r["custom_id"], "messages", r["params"]) for r in requests]
        bid, now = sim.next_id("msgbatch_"), int(time.time())
        batch = _Batch(bid, "anthropic", lines, _polls(lines), now)
        batch.object = {"id": bid, "type": "message_batch", "processing_status": "in_progress",
                        "ended_at": None, "created_at": _iso(now), "expires_at": _iso(now + 86400),
                        "archived_at": None, "cancel_initiated_at": None, "results_url": None}
        made[bid] = batch
        return json_response(anthropic_object(request, batch))

    async def one_message_batch(request: Request) -> Response:
        refused = counted(request, anthropic_error)
        if refused is not None:
            return refused
        batch = made.get(request.path_params["bid"])
        if batch is None or batch.api != "anthropic":
            return anthropic_error(404, f"No batch found with id {request.path_params['bid']}")
        path = request.url.path
        if path.endswith("/cancel"):
            if batch.results is None:
                batch.cancelling = True
                batch.object["cancel_initiated_at"] = _iso(int(time.time()))
            return json_response(anthropic_object(request, batch))
        if path.endswith("/results"):
            if batch.results is None:
                return anthropic_error(400, f"Batch {batch.id} has not finished processing.")
            return Response(b"".join(orjson.dumps(_anthropic_result(c, kind, payload)) + b"\n"
                                     for c, kind, payload in batch.results), media_type=JSONL)
        advance(batch)
        return json_response(anthropic_object(request, batch))

    async def list_anthropic(request: Request) -> Response:
        refused = counted(request, anthropic_error)
        if refused is not None:
            return refused
        data = [anthropic_object(request, b) for b in reversed(made.values())
                if b.api == "anthropic"]
        return json_response({"data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})

    return [Route("/v1/files", upload, methods=["POST"]),
            Route("/v1/files/{fid}", file_info, methods=["GET"]),
            Route("/v1/files/{fid}/content", file_info, methods=["GET"]),
            Route("/v1/batches", create_batch, methods=["POST"]),
            Route("/v1/batches", list_openai, methods=["GET"]),
            Route("/v1/batches/{bid}", one_batch, methods=["GET"]),
            Route("/v1/batches/{bid}/cancel", one_batch, methods=["POST"]),
            Route("/v1/messages/batches", create_message_batch, methods=["POST"]),
            Route("/v1/messages/batches", list_anthropic, methods=["GET"]),
            Route("/v1/messages/batches/{bid}", one_message_batch, methods=["GET"]),
            Route("/v1/messages/batches/{bid}/results", one_message_batch, methods=["GET"]),
            Route("/v1/messages/batches/{bid}/cancel", one_message_batch, methods=["POST"])]


def _anthropic_result(custom_id: str, kind: str, payload: Any) -> dict[str, Any]:
    if kind == "ok":
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": payload}}
    if kind == "error":
        status, message = payload
        return {"custom_id": custom_id, "result": {"type": "errored", "error": orjson.loads(
            anthropic_error(status, message).body)}}
    return {"custom_id": custom_id, "result": {"type": "canceled"}}


def _form(raw: bytes, content_type: str) -> tuple[dict[str, str], bytes | None, str]:
    """A multipart body's text fields, and its file's bytes and name."""
    match = _BOUNDARY.search(content_type)
    fields: dict[str, str] = {}
    content: bytes | None = None
    filename = ""
    if match is None:
        return fields, None, filename
    for part in raw.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        params = {k.lower(): v for k, v in _PARAM.findall(head)}
        value = value.removesuffix(b"\r\n")
        if b"filename" in params:
            content, filename = value, params[b"filename"].decode("utf-8", "replace")
        elif b"name" in params:
            fields[params[b"name"].decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return fields, content, filename
