"""A gateway stand-in for the journal tests: appends records, then dies the way it is told.

    python journal_writer.py DIRECTORY COUNT PREFIX MODE [SEGMENT_BYTES]

It prints ``started``, waits for a line on stdin (so that several writers can start together),
appends COUNT records with request ids ``PREFIX-0`` … and then, by MODE:

* ``hang``: prints ``ready`` and sleeps until killed (the test sends SIGKILL);
* ``suicide``: sends itself SIGKILL right after the last append returned;
* ``exit``: prints ``ready`` and exits without closing the journal.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from meterline.gateway.journal import Journal


def main() -> None:
    directory, count, prefix, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    segment_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 64 << 20
    journal = Journal(Path(directory), segment_bytes=segment_bytes)
    print("started", flush=True)
    sys.stdin.readline()
    for i in range(count):
        journal.append({"request_id": f"{prefix}-{i}", "cost": Decimal(i) / 1000,
                        "at": datetime(2025, 1, 2, 3, 4, 5, i, tzinfo=UTC)})
    if mode == "suicide":
        os.kill(os.getpid(), signal.SIGKILL)
    print("ready", flush=True)
    if mode == "hang":
        time.sleep(60)


if __name__ == "__main__":
    main()
