"""One simulator served over real HTTP for the whole session; per-test clients.

``sim`` is the simulator's state (request counts and log, cleared for each test) and
``sim_url`` its base URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from meterline.simulator import SimState, create_simulator, serve_in_thread


@pytest.fixture(scope="session")
def _served() -> Iterator[tuple[str, SimState]]:
    app = create_simulator()
    with serve_in_thread(app) as url:
        yield url, app.state.sim


@pytest.fixture
def sim(_served: tuple[str, SimState]) -> SimState:
    state = _served[1]
    state.requests.clear()
    state.received.clear()
    state.abandoned = 0
    return state


@pytest.fixture
def sim_url(_served: tuple[str, SimState], sim: SimState) -> str:
    return _served[0]


@pytest.fixture
def oai(sim_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sim_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(sim_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim_url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


@pytest.fixture
def http(sim_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_url, timeout=10) as client:
        yield client
