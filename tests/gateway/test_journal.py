"""The durable journal (SPEC §7.4): nothing that was appended is lost, nothing is drained twice
except across a crash, and a process killed right after appending loses nothing."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.gateway.drainer import Drainer, finished_writers, forget_writer
from meterline.gateway.journal import Journal, encode, writer_of

WRITER = Path(__file__).with_name("journal_writer.py")
REPO = Path(__file__).resolve().parents[2]


class Collect:
    """A sink that remembers every batch; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failing = False
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.calls += 1
            if self.failing:
                raise ConnectionError("database is down")
            self.batches.append(batch)

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [record["request_id"] for batch in self.batches for record in batch]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.jsonl"))


def append_n(journal: Journal, n: int, prefix: str = "r") -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for request_id in ids:
        journal.append({"request_id": request_id, "n": 1})
    return ids


def raw_append(journal: Journal, data: bytes) -> None:
    """Write bytes into the journal's live segment behind its back."""
    assert journal.segment is not None
    with open(journal.segment, "ab") as segment:
        segment.write(data)


def wait_for(condition: Any, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def start_writer(directory: Path, count: int, prefix: str, mode: str,
                 segment_bytes: int | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, str(WRITER), str(directory), str(count), prefix, mode]
    if segment_bytes is not None:
        args.append(str(segment_bytes))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    return process


def go(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.flush()


# -- appending and draining ---------------------------------------------------------------


def test_round_trip_turns_decimals_and_datetimes_into_exact_strings(tmp_path: Path) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=india)
    record = {"request_id": "a", "cost": Decimal("0.000000123456789012345"),
              "big": Decimal("1E+3"), "at": at, "utc": datetime(2025, 1, 1, tzinfo=UTC),
              "day": date(2025, 1, 31), "tokens": 12, "nested": {"lines": [Decimal("-0.50")]},
              "none": None}
    journal = Journal(tmp_path)
    journal.append(record)
    sink = Collect()
    assert journal.drain(sink) == 1
    [got] = sink.batches[0]
    assert got == {"request_id": "a", "cost": "1.23456789012345E-7", "big": "1E+3",
                   "at": "2025-03-04T05:06:07.891011+05:30", "utc": "2025-01-01T00:00:00+00:00",
                   "day": "2025-01-31", "tokens": 12, "nested": {"lines": ["-0.50"]},
                   "none": None}
    assert Decimal(got["cost"]) == record["cost"]
    assert datetime.fromisoformat(got["at"]) == at
    assert datetime.fromisoformat(got["at"]).utcoffset() == timedelta(hours=5, minutes=30)


def test_append_writes_one_complete_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"request_id": "a", "text": "line\nbreak"})
    assert journal.segment is not None
    assert journal.segment.read_bytes() == encode({"request_id": "a", "text": "line\nbreak"})
    assert journal.segment.read_bytes().count(b"\n") == 1


def test_naive_datetimes_and_unknown_types_are_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with pytest.raises(TypeError, match="naive datetime"):
        journal.append({"request_id": "a", "at": datetime(2025, 1, 1)})
    with pytest.raises(TypeError, match="cannot journal"):
        journal.append({"request_id": "b", "what": object()})
    journal.append({"request_id": "c"})
    sink = Collect()
    assert journal.drain(sink) == 1
    assert sink.ids == ["c"]


def test_draining_twice_delivers_nothing_new(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 25)
    sink = Collect()
    assert journal.drain(sink, max_batch=10) == 25
    assert [len(batch) for batch in sink.batches] == [10, 10, 5]
    assert journal.drain(sink) == 0
    journal.append({"request_id": "late"})
    assert journal.drain(sink) == 1
    assert sink.ids == [*ids, "late"]


def test_sink_failure_loses_nothing_and_the_same_records_come_later(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 10)

    class FailOnSecond(Collect):
        def __call__(self, batch: list[dict[str, Any]]) -> None:
            self.failing = self.calls == 1
            super().__call__(batch)

    sink = FailOnSecond()
    with pytest.raises(ConnectionError):
        journal.drain(sink, max_batch=3)
    assert sink.ids == ids[:3]
    assert journal.pending() == 7
    sink.failing = True
    with pytest.raises(ConnectionError):
        journal.drain(Collect.__call__.__get__(sink), max_batch=3)
    assert journal.pending() == 7
    sink.failing = False
    later = Collect()
    assert journal.drain(later, max_batch=3) == 7
    assert later.ids == ids[3:]
    assert journal.pending() == 0


def test_crash_between_sink_and_checkpoint_redelivers_the_batch(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 4)
    seen: list[str] = []

    def stored_then_crashed(batch: list[dict[str, Any]]) -> None:
        seen.extend(record["request_id"] for record in batch)
        raise SystemError("killed before the checkpoint")

    with pytest.raises(SystemError):
        journal.drain(stored_then_crashed)
    sink = Collect()
    assert journal.drain(sink) == 4
    assert seen == ids and sink.ids == ids  # delivered again: the ledger ignores duplicates


def test_checkpoint_survives_a_restart(tmp_path: Path) -> None:
    first = Journal(tmp_path)
    append_n(first, 5, "old")
    assert first.drain(Collect()) == 5
    new = append_n(first, 3, "new")
    first.close()
    sink = Collect()
    assert Journal(tmp_path).drain(sink) == 3
    assert sink.ids == new
    assert segment_files(tmp_path) == []  # the closed segment was drained, then deleted
    # What is left says the first writer is done (gateway/inflight.py removes it).
    assert [p.name for p in tmp_path.iterdir()] == [f"writer-{first.writer}.lock"]


def test_a_writer_is_finished_once_closed_and_drained(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert finished_writers(tmp_path) == []
    append_n(journal, 2)
    other = Journal(tmp_path)
    append_n(other, 1)
    assert journal.writer != other.writer
    assert all(writer_of(path) == journal.writer for path in segment_files(tmp_path)[:1])
    assert finished_writers(tmp_path) == []  # both alive
    journal.close()
    assert finished_writers(tmp_path) == []  # closed, but its lines are not drained yet
    assert other.drain(Collect()) == 3
    assert finished_writers(tmp_path) == [journal.writer]
    forget_writer(tmp_path, journal.writer)
    assert finished_writers(tmp_path) == []
    other.close()
    assert finished_writers(tmp_path) == []  # its segment is still there, drained
    assert Journal(tmp_path).drain(Collect()) == 0  # a journal that never wrote: no writer
    assert finished_writers(tmp_path) == [other.writer]


def test_a_killed_writer_is_finished_once_its_lines_are_drained(tmp_path: Path) -> None:
    code = ("import os, sys\n"
            "from pathlib import Path\n"
            "from meterline.gateway.journal import Journal\n"
            "journal = Journal(Path(sys.argv[1]))\n"
            "journal.append({'request_id': 'killed-0'})\n"
            "print(journal.writer, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    writer = done.stdout.strip()
    assert finished_writers(tmp_path) == []  # its segment is still there
    sink = Collect()
    assert Journal(tmp_path).drain(sink) == 1
    assert sink.ids == ["killed-0"]
    assert finished_writers(tmp_path) == [writer]


def test_unreadable_checkpoint_replays_the_segment(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 3)
    assert journal.drain(Collect()) == 3
    [checkpoint] = tmp_path.glob("*.ckpt")
    checkpoint.write_bytes(b"")
    sink = Collect()
    with caplog.at_level(logging.WARNING):
        assert journal.drain(sink) == 3
    assert sink.ids == ids
    assert "unreadable" in caplog.text


def test_rotation_spreads_records_over_segments(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=500)
    ids = append_n(journal, 60)
    assert len(segment_files(tmp_path)) >= 3
    assert all(path.stat().st_size < 500 + 40 for path in segment_files(tmp_path))
    sink = Collect()
    assert journal.drain(sink, max_batch=7) == 60
    assert sink.ids == ids
    assert segment_files(tmp_path) == [journal.segment]  # rotated-out ones are deleted
    more = append_n(journal, 20, "more")
    assert journal.drain(sink) == 20
    assert sink.ids == ids + more


def test_a_torn_last_line_waits_until_it_is_complete(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    append_n(journal, 2)
    raw_append(journal, b'{"request_id": "r-2", "pa')
    sink = Collect()
    assert journal.drain(sink) == 2
    assert journal.drain(sink) == 0
    assert journal.pending() == 0
    raw_append(journal, b'rt": 2}\n')
    assert journal.pending() == 1
    assert journal.drain(sink) == 1
    assert sink.ids == ["r-0", "r-1", "r-2"]
    assert sink.batches[-1] == [{"request_id": "r-2", "part": 2}]
    assert list(tmp_path.glob("*.bad")) == []


def test_the_torn_tail_of_a_dead_segment_is_set_aside(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    append_n(journal, 2)
    raw_append(journal, b'{"request_id": "torn"')
    journal.close()
    sink = Collect()
    assert Journal(tmp_path).drain(sink) == 2
    assert segment_files(tmp_path) == []
    [bad] = tmp_path.glob("*.bad")
    assert bad.read_bytes() == b'{"request_id": "torn"\n'


def test_a_garbage_line_is_set_aside_and_the_rest_flows(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    journal.append({"request_id": "before"})
    raw_append(journal, b"not json at all\n[1, 2]\n")
    journal.append({"request_id": "after"})
    sink = Collect()
    with caplog.at_level(logging.ERROR):
        assert journal.drain(sink) == 2
    assert sink.ids == ["before", "after"]
    [bad] = tmp_path.glob("*.bad")
    assert bad.read_bytes() == b"not json at all\n[1, 2]\n"
    assert "set aside" in caplog.text
    assert journal.drain(sink) == 0
    assert bad.read_bytes() == b"not json at all\n[1, 2]\n"  # not set aside twice
    journal.close()
    Journal(tmp_path).drain(sink)
    assert segment_files(tmp_path) == [] and bad.exists()  # kept for a human


def test_pending_counts_undrained_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300)
    assert journal.pending() == 0
    append_n(journal, 17)
    assert journal.pending() == 17
    journal.drain(Collect(), max_batch=5)
    assert journal.pending() == 0


def test_a_live_segment_of_another_writer_is_drained_but_kept(tmp_path: Path) -> None:
    writer, reader = Journal(tmp_path), Journal(tmp_path)
    append_n(writer, 3)
    sink = Collect()
    assert reader.drain(sink) == 3
    assert segment_files(tmp_path) == [writer.segment]
    writer.append({"request_id": "r-3"})
    assert reader.drain(sink) == 1
    writer.close()
    assert reader.drain(sink) == 0
    assert segment_files(tmp_path) == []
    assert sink.ids == ["r-0", "r-1", "r-2", "r-3"]
    with pytest.raises(ValueError, match="closed"):
        writer.append({"request_id": "r-4"})


def test_two_drainers_never_drain_the_same_segment_at_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 4)
    other = Journal(tmp_path)
    inner = Collect()
    outer_ids: list[str] = []

    def outer(batch: list[dict[str, Any]]) -> None:
        # While this drain holds the segment, a second drainer must skip it.
        assert other.drain(inner) == 0
        outer_ids.extend(record["request_id"] for record in batch)

    assert journal.drain(outer) == 4
    assert outer_ids == ids and inner.ids == []


def test_concurrent_drainer_threads_deliver_everything_once(tmp_path: Path) -> None:
    writer = Journal(tmp_path, segment_bytes=4000)
    sink = Collect()
    done = threading.Event()

    def drain_loop() -> None:
        reader = Journal(tmp_path)
        while not done.is_set():
            reader.drain(sink, max_batch=13)

    threads = [threading.Thread(target=drain_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    ids = append_n(writer, 2000)
    writer.close()
    done.set()
    for thread in threads:
        thread.join()
    Journal(tmp_path).drain(sink)
    assert Counter(sink.ids) == Counter(ids)
    assert segment_files(tmp_path) == []


def test_fsync_mode_and_sync(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=200, fsync=True)
    ids = append_n(journal, 10)
    journal.sync()
    lazy = Journal(tmp_path / "lazy", segment_bytes=200)
    lazy_ids = append_n(lazy, 10)
    lazy.sync()
    sink = Collect()
    assert journal.drain(sink) == 10 and lazy.drain(sink) == 10
    assert sink.ids == ids + lazy_ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"request_id": "parent-0"})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            journal.append({"request_id": "child-0"})
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    journal.append({"request_id": "parent-1"})
    assert len(segment_files(tmp_path)) == 2
    sink = Collect()
    assert journal.drain(sink) == 3
    assert sorted(sink.ids) == ["child-0", "parent-0", "parent-1"]
    assert segment_files(tmp_path) == [journal.segment]
    # The child wrote under a name of its own, and is done; the parent still writes.
    (child,) = finished_writers(tmp_path)
    assert child != journal.writer and child.startswith(f"{pid}-")


def test_leftover_sidecars_of_deleted_segments_are_swept(tmp_path: Path) -> None:
    name = "seg-00000000000000000001-1-abcd.jsonl"
    for suffix in (".ckpt", ".lock", ".ckpt.tmp", ".bad"):
        (tmp_path / (name + suffix)).write_bytes(b"x")
    assert Journal(tmp_path).drain(Collect()) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [name + ".bad"]


# -- processes -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hang", "suicide"])
def test_sigkill_right_after_appending_loses_nothing(tmp_path: Path, mode: str) -> None:
    writer = start_writer(tmp_path, 500, "killed", mode)
    go(writer)
    if mode == "hang":
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=10) == -signal.SIGKILL
    assert writer.stdout is not None and writer.stdin is not None
    writer.stdout.close()
    writer.stdin.close()
    sink = Collect()
    assert Journal(tmp_path).drain(sink) == 500
    assert sink.ids == [f"killed-{i}" for i in range(500)]
    assert sink.batches[0][7] == {"request_id": "killed-7", "cost": "0.007",
                                  "at": "2025-01-02T03:04:05.000007+00:00"}
    assert segment_files(tmp_path) == []  # the dead process's segment is gone once drained


def test_two_writer_processes_and_a_third_drainer_deliver_everything_once(
        tmp_path: Path) -> None:
    writers = [start_writer(tmp_path, 3000, prefix, "exit", segment_bytes=20_000)
               for prefix in ("a", "b")]
    for writer in writers:
        go(writer)
    sink = Collect()
    drainer = Journal(tmp_path)
    while any(writer.poll() is None for writer in writers):
        drainer.drain(sink, max_batch=250)
    for writer in writers:
        assert writer.wait(timeout=10) == 0
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.read().strip() == "ready"
        writer.stdout.close()
        writer.stdin.close()
    drainer.drain(sink, max_batch=250)
    expected = [f"{prefix}-{i}" for prefix in ("a", "b") for i in range(3000)]
    assert Counter(sink.ids) == Counter(expected)
    assert len(sink.ids) == 6000
    assert segment_files(tmp_path) == []
    assert drainer.pending() == 0


# -- the drainer thread --------------------------------------------------------------------


def test_drainer_delivers_within_a_second_and_stop_flushes(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    sink = Collect()
    drainer = Drainer(journal, sink, interval=0.05).start()
    ids = append_n(journal, 5)
    assert wait_for(lambda: sink.ids == ids, timeout=1.0)
    assert drainer.stop(timeout=5)
    slow = Drainer(journal, sink, interval=60).start()
    assert wait_for(lambda: slow.drains == 1)
    more = append_n(journal, 3, "more")
    time.sleep(0.1)
    assert sink.ids == ids  # the slow drainer waits for its interval...
    assert slow.stop(timeout=5)  # ...but drains what is left before stopping
    assert sink.ids == ids + more


def test_notify_drains_promptly(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append({"request_id": "first"})
    sink = Collect()
    with Drainer(journal, sink, interval=60).start() as drainer:
        assert wait_for(lambda: sink.ids == ["first"])
        journal.append({"request_id": "second"})
        time.sleep(0.05)
        assert sink.ids == ["first"]
        drainer.notify()
        assert wait_for(lambda: sink.ids == ["first", "second"], timeout=1.0)


def test_drainer_backs_off_while_the_sink_fails_and_loses_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 20)
    sink = Collect()
    sink.failing = True
    with caplog.at_level(logging.WARNING):
        drainer = Drainer(journal, sink, interval=0.01, max_backoff=0.04).start()
        assert wait_for(lambda: drainer.failures >= 3)
        calls = sink.calls
        time.sleep(0.1)
        assert sink.calls - calls <= 4  # backing off, not spinning
        sink.failing = False
        assert wait_for(lambda: sink.ids == ids)
        assert wait_for(lambda: drainer.failures == 0)
        assert drainer.stop(timeout=5)
    assert "journal drain failed" in caplog.text
    assert journal.pending() == 0


def test_stop_with_a_failing_sink_keeps_the_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    ids = append_n(journal, 3)
    sink = Collect()
    sink.failing = True
    logging.getLogger("meterline.gateway.drainer").disabled = True
    try:
        drainer = Drainer(journal, sink, interval=0.01).start()
        assert not drainer.stop(timeout=5)
    finally:
        logging.getLogger("meterline.gateway.drainer").disabled = False
    assert journal.pending() == 3
    sink.failing = False
    assert journal.drain(sink) == 3 and sink.ids == ids
