"""A simulated upstream AI provider speaking OpenAI, Anthropic and Gemini wire formats.

Used by ``meterline serve --demo`` (real metered calls without credentials) and by the test
suite as the upstream the gateway proxies to, over real HTTP. Deterministic and fast.

Endpoints (base URL ``http://HOST:PORT/v1`` for OpenAI-format clients, ``http://HOST:PORT``
for Anthropic and Gemini):

- ``POST /v1/chat/completions`` — stream or not; a streamed answer has the usage chunk
  (``choices: []``) before ``data: [DONE]`` only with ``stream_options.include_usage: true``.
  Models starting with ``deepseek`` also report ``prompt_cache_hit_tokens`` / ``..._miss_tokens``.
- The OpenAI-compatible Chinese providers' dialects (simulator/compatible.py): DeepSeek at
  ``/chat/completions``, DashScope at ``/compatible-mode/v1/...``, Volcano Ark at ``/api/v3/...``,
  Zhipu at ``/api/paas/v4/...``, Qianfan at ``/v2/...``; MiniMax and Moonshot at ``/v1/...`` for
  models starting ``MiniMax-`` / ``kimi-`` or ``moonshot-`` — each with its usage fields,
  ``reasoning_content``, and its stream's usage where that provider sends it.
- ``POST /v1/responses`` (``background: true`` answers ``queued``), ``GET`` / ``DELETE
  /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel`` (simulator/responses.py).
- ``POST /v1/embeddings`` (float or base64 vectors, 8 dimensions unless ``dimensions``),
  ``POST /v1/images/generations`` (``n`` images, ``b64_json`` unless ``response_format=url``),
  ``POST /v1/audio/speech`` (417 bytes of audio), ``POST /v1/videos`` (multipart or JSON;
  a completed video job), ``GET /v1/models`` (Anthropic's shape when ``anthropic-version`` is sent).
- ``POST /v1/messages`` — Anthropic, stream or not.
- ``POST /v1beta/models/{model}:generateContent``, ``...:streamGenerateContent`` (SSE with
  ``?alt=sse``, else one JSON array), ``...:countTokens``, ``GET /v1beta/models``.

Token counts (all deterministic):

- prompt: whitespace-separated words of all the request's text (every message and the system
  prompt; the prompt; the inputs), directives removed, at least 1. This is the *uncached* part;
  ``cached``/``cache_write`` tokens come on top of it. So OpenAI ``prompt_tokens`` = words + cached,
  Anthropic ``input_tokens`` = words, Gemini ``promptTokenCount`` = words + cached.
- output: ``tokens=N`` words, default 16, cut to ``max_tokens`` / ``max_completion_tokens`` /
  ``maxOutputTokens`` when smaller (then the finish reason is ``length`` / ``max_tokens`` /
  ``MAX_TOKENS``). The text is "lorem ipsum dolor ..." of exactly that many words.
- reasoning tokens come on top of the visible output: included in OpenAI ``completion_tokens`` and
  Anthropic ``output_tokens``; Gemini's ``thoughtsTokenCount`` (outside ``candidatesTokenCount``).
- embeddings: words per string input (at least 1 each) or the length of each token array.
- Gemini leaves ``cachedContentTokenCount`` and ``thoughtsTokenCount`` out when zero (as Google
  does).

Streams: one word per content chunk (at most 64 chunks; longer answers are grouped evenly).
Anthropic streams send ``message_delta`` twice with cumulative ``output_tokens``: midway (after
half of the text deltas) and at the end. Gemini streams put ``usageMetadata`` on the last chunk
only, which carries no text.

Directives — ``[[sim key=value ...]]`` anywhere in the request's text (several keys in one block
or several blocks); they pass unchanged through a gateway that forwards bodies:

- ``status=N`` (400..599): answer HTTP N with the provider's error shape (after ``delay_ms``).
- ``retry_after=N``: with ``status``, add a ``retry-after: N`` header.
- ``delay_ms=N``: sleep before answering (streams: before the response headers).
- ``chunk_delay_ms=N``: sleep between stream events (otherwise the stream is written at once).
- ``break_after=N``: stream only the opening events and N content chunks, then drop the
  connection without finishing the body (no final usage, no ``[DONE]``/``message_stop``).
- ``no_usage``: report no usage at all (no ``usage``/``usageMetadata``, no usage chunk).
- ``tokens=N``: generate N words.
- ``cached=N``: N cached prompt tokens (OpenAI ``cached_tokens``, DeepSeek hit tokens,
  Anthropic ``cache_read_input_tokens``, Gemini ``cachedContentTokenCount``).
- ``cache_write=N``: Anthropic ``cache_creation_input_tokens`` (ignored by the other formats).
- ``cache_write_1h=N``: Anthropic cache writes with a one-hour TTL (``cache_creation.
  ephemeral_1h_input_tokens``, also counted in ``cache_creation_input_tokens``).
- ``reasoning=N``: N reasoning tokens (see above).
- ``cost=X``: OpenRouter-style ``usage.cost`` number in OpenAI-format usage;
  ``cost_in=PATH`` puts it at that dotted path of the answer (and of a stream's usage chunk)
  instead.
- ``polls=N``: a background response is finished at its N-th retrieval (default 1).
- ``searches=N``, ``file_searches=N``, ``code_sessions=N``: built-in tool uses — in a Responses
  answer, N ``web_search_call`` / ``file_search_call`` output items and N code interpreter
  containers with two ``code_interpreter_call`` items each; in an Anthropic answer, ``searches``
  as ``usage.server_tool_use.web_search_requests``.

An unknown or malformed directive gets a 400 in the provider's shape.

For tests: ``create_simulator(require_key=...)`` answers 401 (provider's shape) to requests
without that key; ``app.state.requests`` counts requests per path (refused ones too),
``app.state.received`` keeps the last requests (method, path, query, headers, parsed body), and
``app.state.sim.abandoned`` counts paced streams whose client left early.
``serve_in_thread(app)`` serves it on loopback and yields the base URL;
``python -m meterline.simulator --port 9000`` runs it standalone.

Errors: OpenAI ``{"error": {"message", "type", "param", "code"}}``, Anthropic ``{"type": "error",
"error": {"type", "message"}}``, Gemini ``{"error": {"code", "message", "status"}}``.
"""

from meterline.simulator.app import create_simulator
from meterline.simulator.common import Received, SimState
from meterline.simulator.directives import Directives, parse_directives
from meterline.simulator.server import run, serve_in_thread

__all__ = [
    "Directives",
    "Received",
    "SimState",
    "create_simulator",
    "parse_directives",
    "run",
    "serve_in_thread",
]
