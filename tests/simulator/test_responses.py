"""The simulated Responses API's stored responses (simulator/responses.py), through the official
``openai`` SDK: retrieve, delete, cancel, and background responses finished after ``polls=N``
retrievals."""

from __future__ import annotations

import openai
import pytest

from meterline.simulator import SimState


def test_retrieve_and_delete(oai: openai.OpenAI) -> None:
    created = oai.responses.create(model="gpt-5-nano", input="hi there [[sim tokens=2]]")
    assert created.status == "completed" and created.output_text == "lorem ipsum"
    assert oai.responses.retrieve(created.id).usage == created.usage
    oai.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError, match="background"):
        oai.responses.cancel(oai.responses.create(model="m", input="x").id)


def test_a_background_response_finishes_at_its_nth_retrieval(oai: openai.OpenAI,
                                                             sim: SimState) -> None:
    queued = oai.responses.create(model="gpt-5-nano", background=True,
                                  input="a b c [[sim polls=3 tokens=4 cached=2 reasoning=1]]")
    assert (queued.status, queued.usage, queued.output) == ("queued", None, [])
    seen = [oai.responses.retrieve(queued.id) for _ in range(4)]
    assert [r.status for r in seen] == ["in_progress", "in_progress", "completed", "completed"]
    usage = seen[2].usage
    assert usage is not None
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens,
            usage.output_tokens_details.reasoning_tokens) == (5, 2, 5, 1)
    assert seen[2].output_text == "lorem ipsum dolor sit"
    assert sim.requests[f"/v1/responses/{queued.id}"] == 4


def test_cancelling_a_running_background_response(oai: openai.OpenAI) -> None:
    queued = oai.responses.create(model="m", background=True, input="a b [[sim polls=9]]")
    cancelled = oai.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert cancelled.usage is not None
    assert (cancelled.usage.input_tokens, cancelled.usage.output_tokens) == (2, 0)
    assert oai.responses.retrieve(queued.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        oai.responses.cancel(queued.id)
    done = oai.responses.create(model="m", background=True, input="a")
    assert oai.responses.retrieve(done.id).status == "completed"
    with pytest.raises(openai.BadRequestError, match="completed"):
        oai.responses.cancel(done.id)
