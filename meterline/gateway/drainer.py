"""Reading the journal: drain its segments into a sink, and the ``Drainer`` thread that does it.

The ordering that makes this lossless: a segment's checkpoint moves past a batch only after the
sink returned, and it is replaced atomically. A crash between the two re-delivers the batch,
which the idempotent sink absorbs; nothing is ever skipped. A segment is deleted only when its
writer is gone (nobody holds its shared lock, so it can never grow again) and every line of it
went to the sink or to ``<segment>.bad``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import orjson

from meterline.gateway.journal import (
    SEGMENT_PREFIX,
    SEGMENT_SUFFIX,
    WRITER_PREFIX,
    WRITER_SUFFIX,
    Sink,
    segments,
    sidecar,
    try_flock,
    unlink,
    writer_lock,
    writer_of,
)
from meterline.health import Tracker, backoff

if TYPE_CHECKING:
    from meterline.gateway.journal import Journal

log = logging.getLogger(__name__)

_SIDECARS = (".ckpt", ".ckpt.tmp", ".lock")
_READ_CHUNK = 1 << 20
_STALE_NEW_SECONDS = 60.0


def drain_directory(directory: Path, sink: Sink, *, max_batch: int = 1000) -> int:
    """``Journal.drain`` for the journal in ``directory``."""
    if max_batch <= 0:
        raise ValueError("max_batch must be positive")
    delivered = 0
    for path in segments(directory):
        delivered += _drain_segment(path, sink, max_batch)
    _sweep(directory)
    return delivered


def count_pending(directory: Path) -> int:
    """``Journal.pending`` for the journal in ``directory``."""
    total = 0
    for path in segments(directory):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            size = os.fstat(fd).st_size
            offset = _read_checkpoint(path, size, quiet=True)
            sample = os.pread(fd, min(size - offset, _READ_CHUNK), offset)
        finally:
            os.close(fd)
        lines = sample.count(b"\n")
        backlog = size - offset
        total += lines if len(sample) >= backlog else lines * backlog // max(len(sample), 1)
    return total


def finished_writers(directory: Path) -> list[str]:
    """The writers of this journal that are done: their writer lock is free (the process
    closed its journal or died) and none of their segments is left (all drained)."""
    left = {writer_of(path) for path in segments(directory)}
    done = []
    for writer in _writers(directory):
        if writer in left:
            continue
        try:
            fd = os.open(writer_lock(directory, writer), os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            free = try_flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)
        # A segment made between the listing and the lock belongs to a writer alive then.
        if free and not any(writer_of(path) == writer for path in segments(directory)):
            done.append(writer)
    return done


def _writers(directory: Path) -> list[str]:
    return sorted(entry.name[len(WRITER_PREFIX):-len(WRITER_SUFFIX)]
                  for entry in os.scandir(directory)
                  if entry.name.startswith(WRITER_PREFIX) and entry.name.endswith(WRITER_SUFFIX))


def forget_writer(directory: Path, writer: str) -> None:
    """Remove a finished writer's lock file (its unfinished calls are dealt with)."""
    unlink(writer_lock(directory, writer))


def _drain_segment(path: Path, sink: Sink, max_batch: int) -> int:
    lock_fd = _lock_for_draining(path)
    if lock_fd is None:
        return 0
    try:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # deleted by another drainer meanwhile
            unlink(sidecar(path, ".lock"))
            return 0
        try:
            # Liveness first, size second: once the writer is gone, the size we read is final.
            dead = try_flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            offset = _read_checkpoint(path, size)
            delivered, offset = _deliver(path, fd, offset, size, sink, max_batch)
            if dead:
                if offset < size:  # its writer died mid-line: that append never returned
                    _set_aside(path, os.pread(fd, min(size - offset, _READ_CHUNK), offset),
                               offset, "torn last line of a dead segment")
                _delete_segment(path)
            return delivered
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)


def _deliver(path: Path, fd: int, offset: int, size: int, sink: Sink,
             max_batch: int) -> tuple[int, int]:
    """Send the complete lines of ``path`` from ``offset`` to ``size``; returns the records
    delivered and the new checkpoint."""
    delivered = 0
    batch: list[dict[str, Any]] = []
    consumed = offset  # end of the last line in ``batch`` (or set aside)
    for line, end in _complete_lines(fd, offset, size):
        try:
            record = orjson.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            if batch:
                sink(batch)
                delivered += len(batch)
                batch = []
            _set_aside(path, line, consumed, "unparseable journal line")
            _write_checkpoint(path, end)
            consumed = end
            continue
        batch.append(record)
        consumed = end
        if len(batch) >= max_batch:
            sink(batch)
            delivered += len(batch)
            batch = []  # a new list: the sink may keep the one it got
            _write_checkpoint(path, consumed)
    if batch:
        sink(batch)
        delivered += len(batch)
        _write_checkpoint(path, consumed)
    return delivered, consumed


def _complete_lines(fd: int, offset: int, size: int) -> Iterator[tuple[bytes, int]]:
    """The complete lines of ``fd`` between ``offset`` and ``size`` (without their newline),
    each with the offset just past it; a trailing partial line is left alone. Reads in
    chunks, so memory stays bounded whatever the backlog."""
    buffer = b""
    start = offset  # file offset of buffer[0]
    position = offset
    while position < size:
        chunk = os.pread(fd, min(_READ_CHUNK, size - position), position)
        if not chunk:
            break
        position += len(chunk)
        buffer = buffer + chunk if buffer else chunk
        begin = 0
        while (newline := buffer.find(b"\n", begin)) >= 0:
            yield buffer[begin:newline], start + newline + 1
            begin = newline + 1
        buffer = buffer[begin:]
        start += begin


def _lock_for_draining(segment: Path) -> int | None:
    """Take the drain lock of ``segment``, or None if another drainer holds it."""
    path = sidecar(segment, ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if try_flock(fd, fcntl.LOCK_EX):
            # A drainer that deleted the segment unlinks its lock file last: make sure ours is
            # still the one at that name.
            held, current = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def _read_checkpoint(segment: Path, size: int, *, quiet: bool = False) -> int:
    try:
        data = sidecar(segment, ".ckpt").read_bytes()
    except FileNotFoundError:
        return 0
    try:
        offset = orjson.loads(data)["offset"]
        if type(offset) is not int or offset < 0:
            raise ValueError(offset)
    except (ValueError, KeyError, TypeError):
        if not quiet:
            log.warning("journal checkpoint of %s is unreadable; replaying the segment "
                        "(the ledger ignores duplicates)", segment.name)
        return 0
    if offset > size:  # the machine crashed before the segment's tail reached the disk
        if not quiet:
            log.warning("journal checkpoint of %s is past its end (%d > %d)", segment.name,
                        offset, size)
        return size
    return offset


def _write_checkpoint(segment: Path, offset: int) -> None:
    temporary = sidecar(segment, ".ckpt.tmp")
    temporary.write_bytes(orjson.dumps({"offset": offset}))
    os.replace(temporary, sidecar(segment, ".ckpt"))


def _set_aside(segment: Path, line: bytes, offset: int, why: str) -> None:
    with open(sidecar(segment, ".bad"), "ab") as bad:
        bad.write(line + b"\n")
    log.error("%s at %s:%d set aside in %s.bad: %r", why, segment.name, offset, segment.name,
              line[:200])


def _delete_segment(segment: Path) -> None:
    # The segment first: a crash before the sidecars go leaves orphans for _sweep, never a
    # segment without its checkpoint (which would replay it).
    unlink(segment)
    for suffix in _SIDECARS:
        unlink(sidecar(segment, suffix))


def _sweep(directory: Path) -> None:
    """Remove sidecars of deleted segments (a drainer died while deleting) and hidden new
    segments whose creator died between creating and renaming them."""
    for entry in os.scandir(directory):
        name = entry.name
        if name.startswith(SEGMENT_PREFIX):
            for suffix in _SIDECARS:
                # A sidecar is only made once its segment exists, and a segment never comes
                # back: a missing one was deleted for good.
                if (name.endswith(SEGMENT_SUFFIX + suffix)
                        and not (directory / name[: -len(suffix)]).exists()):
                    unlink(directory / name)
        elif name.startswith("." + SEGMENT_PREFIX) and name.endswith(".new"):
            try:
                if time.time() - entry.stat().st_mtime < _STALE_NEW_SECONDS:
                    continue
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                if try_flock(fd, fcntl.LOCK_EX):
                    unlink(Path(entry.path))
            finally:
                os.close(fd)


class Drainer:
    """A daemon thread that drains ``journal`` into ``sink`` every ``interval`` seconds, and
    promptly after ``notify()``. When the sink fails it logs and backs off exponentially (up
    to ``max_backoff`` seconds; ``notify`` does not cut a back-off short), however long the
    failures last; ``health`` keeps its last success and failures in a row. With
    ``sync_interval`` it also calls ``journal.sync()`` that often (machine-crash durability).
    ``stop()`` drains what is left before returning. Use as ``with Drainer(...).start():``."""

    def __init__(self, journal: Journal, sink: Sink, *, interval: float = 0.2,
                 max_batch: int = 1000, max_backoff: float = 5.0,
                 sync_interval: float | None = None, health: Tracker | None = None) -> None:
        if interval <= 0 or max_backoff <= 0:
            raise ValueError("interval and max_backoff must be positive")
        self.journal = journal
        self.sink = sink
        self.interval = interval
        self.max_batch = max_batch
        self.max_backoff = max_backoff
        self.sync_interval = sync_interval
        self.health = health or Tracker("journal_drainer", interval)
        self.drains = 0  # drains that succeeded
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._clean_exit = False
        self._thread = threading.Thread(target=self._run, name="meterline-journal-drainer",
                                        daemon=True)

    @property
    def failures(self) -> int:
        """Drains that failed in a row (0 after a success)."""
        return self.health.failures

    def start(self) -> Self:
        self._thread.start()
        return self

    def notify(self) -> None:
        """Drain soon (cheap; call it after appending)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the thread after a last drain; True if that drain delivered everything (what
        it could not stays journaled for the next run)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return self._clean_exit and not self._thread.is_alive()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        next_sync = time.monotonic() + (self.sync_interval or 0.0)
        while True:
            stopping = self._stopping.is_set()
            try:
                self.journal.drain(self.sink, max_batch=self.max_batch)
            except Exception as exc:
                failures = self.health.failed(exc)
                if stopping:
                    log.exception("last journal drain failed; the records stay journaled")
                    return
                delay = backoff(self.interval, failures, self.max_backoff)
                log.warning("journal drain failed (%d in a row); retrying in %.1fs",
                            failures, delay, exc_info=failures == 1)
                self._stopping.wait(delay)
                continue
            self.drains += 1
            if ended := self.health.succeeded():
                log.info("journal drain recovered after %d failures", ended)
            if stopping:
                self._clean_exit = True
                return
            if self.sync_interval is not None and time.monotonic() >= next_sync:
                try:
                    self.journal.sync()
                except OSError:
                    log.exception("journal sync failed")
                next_sync = time.monotonic() + self.sync_interval
            self._wake.wait(self.interval)
            self._wake.clear()
