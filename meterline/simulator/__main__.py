"""``python -m meterline.simulator [--host H] [--port P] [--require-key K]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from meterline.simulator.server import DEFAULT_PORT, run


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m meterline.simulator",
        description=(
            "Run meterline's simulated upstream provider: OpenAI (/v1/...), Anthropic "
            "(/v1/messages) and Gemini (/v1beta/models/...) wire formats, deterministic usage, "
            "and [[sim ...]] test directives in the request text."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--require-key",
        metavar="KEY",
        help="answer 401 unless requests carry this key (Bearer, x-api-key, x-goog-api-key, ?key=)",
    )
    args = parser.parse_args(argv)
    run(args.host, args.port, require_key=args.require_key)


if __name__ == "__main__":
    main()
