"""The durable local journal: every gateway call is on disk before its answer leaves (SPEC §7.4).

``Journal.append`` encodes a record as one JSON line and writes it with a single ``write`` to
an ``O_APPEND`` segment file of this process. When it returns, the line is in the kernel's page
cache, which outlives the process: a SIGKILL right afterwards loses nothing. Nothing on the
response path talks to the database; ``Journal.drain`` (run by a ``Drainer`` thread) later moves
the lines into an idempotent sink (the ledger ignores request ids it already has).

Directory layout (several processes, even several hosts' worth of restarts, may share it):

* ``seg-<time_ns>-<pid>-<random>.jsonl``: a segment, written by one process. The writer holds a
  shared ``flock`` on it for as long as it writes there; a segment nobody holds is dead (its
  writer rotated, closed or died) and is deleted once fully drained. It is created under a
  hidden name, locked, then renamed, so no drainer ever sees a live segment without its lock.
* ``<segment>.ckpt``: how far the segment is drained (``{"offset": n}``), replaced atomically
  (write a temporary file, ``os.replace``) and only after the sink accepted the lines before it.
* ``<segment>.lock``: drainers take ``LOCK_EX | LOCK_NB`` on it, so one drains a segment at once.
* ``<segment>.bad``: complete lines that do not parse as a JSON object, set aside (and logged)
  so that they never block the lines after them. Kept for a human; never deleted.
* ``writer-<writer>.lock``: held (shared ``flock``) by a journal from its first append until it
  is closed. Segments are named after their writer (``seg-<time_ns>-<writer>.jsonl``), so once
  this lock is free and no segment of the writer is left, everything it wrote was drained: what
  it started and never finished will not finish (gateway/inflight.py).

Records come back as decoded JSON: ``Decimal`` values are written as their exact string
(``str(d)``), aware ``datetime`` values as ISO 8601 (``isoformat()``) and ``date`` as
``YYYY-MM-DD``, so readers get *strings* back and convert them (``Decimal(s)``,
``datetime.fromisoformat(s)``). Naive datetimes are refused: a billing record needs a zone.

Durability: page-cache writes survive process death, not a machine crash or power loss. For
those, pass ``fsync=True`` (``fdatasync`` after every append: slow, a disk flush per call) or
call ``sync()`` periodically (``Drainer(sync_interval=...)`` does), which bounds the loss to the
last interval. A lost or torn checkpoint only replays lines, which the idempotent sink absorbs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

#: Receives a batch of records; must be idempotent by the records' request id.
Sink = Callable[[list[dict[str, Any]]], None]

SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".jsonl"
WRITER_PREFIX = "writer-"
WRITER_SUFFIX = ".lock"
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME


def _default(value: Any) -> Any:
    kind = type(value)
    if kind is Decimal:
        return str(value)
    if kind is datetime or isinstance(value, datetime):
        zone = value.tzinfo
        if zone is None or (zone is not UTC and value.utcoffset() is None):
            raise TypeError(f"naive datetime {value!r} in a journal record; use an aware one")
        # orjson writes the same text as isoformat(), three times faster.
        return orjson.dumps(value).decode()[1:-1]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot journal a {kind.__name__}: {value!r}")


def encode(record: Mapping[str, Any]) -> bytes:
    """One journal line (with its newline) for ``record``."""
    if type(record) is not dict:
        record = dict(record)
    try:
        return orjson.dumps(record, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as error:  # say which value, not just "not serializable"
        raise TypeError(f"{error.__cause__ or error}") from error


class Journal:
    """An append-only journal of records in ``directory``, shared by any number of processes."""

    def __init__(self, directory: Path, *, segment_bytes: int = 64 << 20,
                 fsync: bool = False) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd = -1
        self._segment: Path | None = None
        self._size = 0
        self._closed = False
        self._unsynced: list[Path] = []  # segments rotated out since the last sync()
        self._dir_dirty = False  # a segment was created since the last sync()
        self._writer = _new_writer()
        self._writer_fd = -1
        _JOURNALS.add(self)

    @property
    def writer(self) -> str:
        """This process's name in the journal (in its segments' names and its writer lock)."""
        return self._writer

    # -- writing ---------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line; on return it survives this process being killed."""
        line = encode(record)
        with self._lock:
            if self._closed:
                raise ValueError("journal is closed")
            if self._writer_fd < 0:
                self._hold_writer_lock()
            if self._fd < 0 or self._size >= self.segment_bytes:
                self._rotate()
            fd = self._fd
            try:
                written = write_holding_gil(fd, line)
                while written < len(line):  # only near a full disk; the segment is ours alone
                    more = os.write(fd, memoryview(line)[written:])
                    if more == 0:
                        raise OSError("journal write made no progress")
                    written += more
                if self.fsync:
                    os.fdatasync(fd)
            except BaseException:
                # The segment may now end in a torn line: never write after it.
                self._close_segment()
                raise
            self._size += written

    def sync(self) -> None:
        """Flush what was appended so far to disk (for machine crashes; slow, never on the
        response path)."""
        with self._lock:  # flush a duplicate outside the lock: appends must not wait for it
            fd = os.dup(self._fd) if self._fd >= 0 else -1
            rotated, dir_dirty = self._unsynced, self._dir_dirty
            self._unsynced, self._dir_dirty = [], False
        if fd >= 0:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        for path in rotated:
            with contextlib.suppress(FileNotFoundError):  # already drained and deleted
                fsync_path(path)
        if dir_dirty:
            fsync_path(self.directory)

    def close(self) -> None:
        """Stop writing; the current segment becomes dead and is deleted once drained."""
        with self._lock:
            self._closed = True
            self._close_segment()
            self._release_writer_lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def segment(self) -> Path | None:
        """The segment this process is writing, if any."""
        return self._segment

    def _hold_writer_lock(self) -> None:
        fd = os.open(writer_lock(self.directory, self._writer),
                     os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._writer_fd = fd

    def _release_writer_lock(self) -> None:
        # The file stays: a free lock with no segment left tells the sweeper this writer is
        # done (it deletes the file once it has dealt with the writer's unfinished calls).
        if self._writer_fd >= 0:
            os.close(self._writer_fd)
            self._writer_fd = -1

    def _rotate(self) -> None:
        name = f"{SEGMENT_PREFIX}{time.time_ns():020d}-{self._writer}"
        path = self.directory / (name + SEGMENT_SUFFIX)
        hidden = self.directory / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # "being written": drainers must not delete it
            os.rename(hidden, path)
            if self.fsync:
                fsync_path(self.directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hidden)
            raise
        if self._segment is not None:
            self._unsynced = [*self._unsynced[-15:], self._segment]
        self._close_segment()
        self._fd, self._segment, self._size = fd, path, 0
        self._dir_dirty = not self.fsync

    def _close_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the writer's lock
        self._fd, self._size = -1, 0

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's open segment (and its lock); it must get its own.
        self._lock = threading.Lock()
        self._close_segment()
        self._segment, self._unsynced, self._dir_dirty = None, [], False
        # The parent's writer lock is the parent's: close our copy of it, take our own name.
        if self._writer_fd >= 0:
            os.close(self._writer_fd)
            self._writer_fd = -1
        self._writer = _new_writer()

    # -- reading (implemented in meterline.gateway.drainer) ---------------------------------

    def drain(self, sink: Sink, *, max_batch: int = 1000) -> int:
        """Deliver every complete line not yet drained, from all segments in the directory
        (this process's live one, other live ones and those left by dead processes).

        Batches of at most ``max_batch`` records go to ``sink``; a segment's checkpoint moves
        past a batch only after ``sink`` returned. If ``sink`` raises, the exception propagates
        and the batch is delivered again by a later ``drain``. Segments another drainer holds
        are skipped; dead segments are deleted once drained. Returns the records delivered.
        """
        from meterline.gateway.drainer import drain_directory

        return drain_directory(self.directory, sink, max_batch=max_batch)

    def pending(self) -> int:
        """Records appended (by any process) but not yet drained: exact for small backlogs,
        extrapolated from the first MiB of each segment's backlog beyond that."""
        from meterline.gateway.drainer import count_pending

        return count_pending(self.directory)


def _libc_write() -> Callable[[int, bytes, int], int] | None:
    """libc's ``write``, called without releasing the GIL (``ctypes.PyDLL``), or None."""
    try:
        function = ctypes.PyDLL(None, use_errno=True).write
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    function.restype = ctypes.c_ssize_t
    found: Callable[[int, bytes, int], int] = function
    return found


_WRITE = _libc_write()


def write_holding_gil(fd: int, data: bytes) -> int:
    """``os.write(fd, data)``, but keeping the GIL.

    ``os.write`` lets go of the GIL for the call; a line going into the page cache takes a
    microsecond, but getting the GIL back means waiting until another thread (the drainer,
    writing the ledger) lets go of it in turn: measured at about 75 microseconds per append
    under load, twice per call, on the event loop (docs/decisions.md, issue 17). The event loop
    waits for this write whatever happens, so holding the GIL through it costs nothing."""
    if _WRITE is None:
        return os.write(fd, data)
    while True:
        written = _WRITE(fd, data, len(data))
        if written >= 0:
            return written
        error = ctypes.get_errno()
        if error != errno.EINTR:
            raise OSError(error, os.strerror(error))


def segments(directory: Path) -> list[Path]:
    """The segments in ``directory``, oldest first."""
    return sorted(directory / entry.name for entry in os.scandir(directory)
                  if entry.name.startswith(SEGMENT_PREFIX) and entry.name.endswith(SEGMENT_SUFFIX))


def _new_writer() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def writer_lock(directory: Path, writer: str) -> Path:
    return directory / f"{WRITER_PREFIX}{writer}{WRITER_SUFFIX}"


def writer_of(segment: Path) -> str:
    """The writer that wrote ``segment`` (``seg-<time_ns>-<writer>.jsonl``)."""
    stem = segment.name[len(SEGMENT_PREFIX):-len(SEGMENT_SUFFIX)]
    return stem.partition("-")[2]


def sidecar(segment: Path, suffix: str) -> Path:
    return segment.with_name(segment.name + suffix)


def try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_JOURNALS: weakref.WeakSet[Journal] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for journal in list(_JOURNALS):
        journal._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)
