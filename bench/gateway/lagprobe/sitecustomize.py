"""Event-loop lag probe for the gateway benchmark's servers (the floor and meterline).

Python imports ``sitecustomize`` at start from the first folder on ``sys.path`` that has one:
``run.py`` puts this folder first on the servers' ``PYTHONPATH`` and names a folder in
``BENCH_LAG_DIR``. Then every uvicorn server in the process (and in worker processes it
spawns, which inherit both) runs one more task on its event loop from startup to shutdown: it
sleeps 1 ms in a loop and writes, per window of 0.1 s, the worst overshoot of those sleeps,
i.e. the longest the loop was kept from running a ready task. One line per window,
``<window start> <window end> <worst overshoot ms>`` (``time.monotonic()``: the same clock in
every process on the machine), to ``<BENCH_LAG_DIR>/lag-<pid>.txt``.

Without ``BENCH_LAG_DIR`` this module does nothing. It replaces any other sitecustomize of the
environment for that process (a benchmark server needs none).
"""

from __future__ import annotations

import os

_FOLDER = os.environ.get("BENCH_LAG_DIR")
SLEEP = 0.001
WINDOW = 0.1


def _install(folder: str) -> None:
    import asyncio
    import time
    from typing import Any

    from uvicorn.server import Server

    startup, shutdown = Server.startup, Server.shutdown
    tasks: dict[int, asyncio.Task[None]] = {}

    async def watch(path: str) -> None:
        with open(path, "a", buffering=1) as out:
            start = before = time.monotonic()
            worst = 0.0
            while True:
                await asyncio.sleep(SLEEP)
                now = time.monotonic()
                worst = max(worst, now - before - SLEEP)
                before = now
                if now - start >= WINDOW:
                    out.write(f"{start:.4f} {now:.4f} {1000 * worst:.3f}\n")
                    start, worst = now, 0.0

    async def probed_startup(self: Server, *args: Any, **kwargs: Any) -> None:
        await startup(self, *args, **kwargs)
        path = os.path.join(folder, f"lag-{os.getpid()}.txt")
        tasks[id(self)] = asyncio.get_running_loop().create_task(watch(path))

    async def probed_shutdown(self: Server, *args: Any, **kwargs: Any) -> None:
        task = tasks.pop(id(self), None)
        if task is not None:
            task.cancel()
        await shutdown(self, *args, **kwargs)

    Server.startup = probed_startup  # type: ignore[method-assign]
    Server.shutdown = probed_shutdown  # type: ignore[method-assign]


if _FOLDER:
    import contextlib

    with contextlib.suppress(ImportError):  # no uvicorn in this interpreter: nothing to probe
        _install(_FOLDER)
