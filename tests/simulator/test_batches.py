"""The simulated Batch APIs (simulator/batches.py) through the official SDKs: OpenAI files and
batches, Anthropic Message Batches; batches finish at their ``polls=N``-th retrieval, lines
answered by the synchronous endpoints' builders (usage from ``[[sim ...]]``), error lines in
the error file or ``errored`` results, and cancelled batches with their first half done."""

from __future__ import annotations

import anthropic
import openai
import orjson
import pytest


def jsonl(*lines: tuple[str, str, dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps({"custom_id": c, "method": "POST", "url": url, "body": body})
                    + b"\n" for c, url, body in lines)


def chat(prompt: str) -> dict[str, object]:
    return {"model": "gpt-5-nano", "messages": [{"role": "user", "content": prompt}]}


def test_an_openai_batch_finishes_at_its_nth_retrieval(oai: openai.OpenAI) -> None:
    content = jsonl(("a", "/v1/chat/completions", chat("one two [[sim tokens=3 polls=2]]")),
                    ("b", "/v1/responses", {"model": "gpt-5-nano",
                                            "input": "three [[sim tokens=2 cached=4]]"}),
                    ("c", "/v1/chat/completions", chat("x [[sim status=429]]")))
    uploaded = oai.files.create(file=("in.jsonl", content), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes) == ("batch", len(content))
    assert oai.files.content(uploaded.id).content == content
    batch = oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    assert batch.status == "validating"
    seen = [oai.batches.retrieve(batch.id) for _ in range(3)]
    assert [b.status for b in seen] == ["in_progress", "completed", "completed"]
    done = seen[-1]
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed,
            done.request_counts.failed) == (3, 2, 1)
    assert done.output_file_id == seen[1].output_file_id  # made once
    assert done.output_file_id and done.error_file_id
    output = {line["custom_id"]: line["response"] for line in
              map(orjson.loads, oai.files.content(done.output_file_id).text.splitlines())}
    assert output["a"]["status_code"] == 200
    assert output["a"]["body"]["usage"]["prompt_tokens"] == 2
    assert output["a"]["body"]["usage"]["completion_tokens"] == 3
    assert output["b"]["body"]["object"] == "response"
    assert output["b"]["body"]["usage"]["input_tokens_details"]["cached_tokens"] == 4
    errors = [orjson.loads(line) for line in
              oai.files.content(done.error_file_id).text.splitlines()]
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("c", 429)]
    assert batch.id in [b.id for b in oai.batches.list()]


def test_a_cancelled_openai_batch_has_its_first_half_done(oai: openai.OpenAI) -> None:
    content = jsonl(*[(f"k{i}", "/v1/chat/completions", chat(f"w{i} [[sim polls=5]]"))
                      for i in range(5)])
    uploaded = oai.files.create(file=("in.jsonl", content), purpose="batch")
    batch = oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    assert oai.batches.cancel(batch.id).status == "cancelling"
    ended = oai.batches.retrieve(batch.id)
    assert ended.status == "cancelled" and ended.output_file_id
    assert ended.request_counts is not None and ended.request_counts.completed == 2
    with pytest.raises(openai.BadRequestError):
        oai.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_never")


def test_anthropic_message_batches(claude: anthropic.Anthropic, sim_url: str) -> None:
    def params(prompt: str) -> dict[str, object]:
        return {"model": "claude-haiku-4-5", "max_tokens": 32,
                "messages": [{"role": "user", "content": prompt}]}

    batch = claude.messages.batches.create(requests=[  # type: ignore[list-item]
        {"custom_id": "ok", "params": params("hello [[sim tokens=5 cached=7 cache_write=2]]")},
        {"custom_id": "bad", "params": params("no [[sim status=400]]")}])
    assert (batch.processing_status, batch.request_counts.processing) == ("in_progress", 2)
    ended = claude.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.results_url == f"{sim_url}/v1/messages/batches/{batch.id}/results"
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 1)
    results = {r.custom_id: r.result for r in claude.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded" and results["bad"].type == "errored"
    usage = results["ok"].message.usage  # type: ignore[union-attr]
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens) == (1, 5, 7, 2)
    assert batch.id in [b.id for b in claude.messages.batches.list()]

    slow = claude.messages.batches.create(requests=[  # type: ignore[list-item]
        {"custom_id": f"s{i}", "params": params("wait [[sim polls=9]]")} for i in range(2)])
    assert claude.messages.batches.cancel(slow.id).processing_status == "canceling"
    cancelled = claude.messages.batches.retrieve(slow.id)
    assert (cancelled.processing_status, cancelled.request_counts.succeeded,
            cancelled.request_counts.canceled) == ("ended", 1, 1)
