"""Evaluate items in a forked child process, so that an item that kills its process (a crash in a C extension,
as durable_rules' core could) costs one error row instead of the whole task.

Used by the Spark reduce side, where a dead Python worker fails the task, Spark retries it, the retry dies on
the same patient, and the job fails; and by the local runner's workers, whose death would stop the run
(cds/screen/local.py).

A ``Supervisor`` forks one child and sends it one item at a time through a pipe; the child answers each with its
row and waits for the next. The child lives as long as the supervisor (the local runner keeps one per worker
for the whole run), so it is forked once, not once per bucket: every fork costs the pages the child then writes
(reference counts of the inherited knowledge and of the items themselves), which the kernel copies one by one.
When the child dies, the item it was on is evaluated once more in a new child, first (its death may have had
another cause: a kill, the out-of-memory killer); a second death gives it ``crash_row``, and the next item
starts another child. Rows come out in the order of the items, the same rows an unsupervised run gives,
whatever happened on the way.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")
_ROW = b"R"
_LEN = 4  # bytes of a row's length, big-endian
_GRACE = 10.0  # seconds an idle child has to exit at the end of its input before it is killed


class Supervisor(Generic[T]):
    """Items evaluated one at a time in a forked child that stays for the next ones (see the module docstring).

    ``evaluate(id, item)`` and ``crash_row(id, exit status)`` give a row; ``before_each_child`` runs in each
    child before its first item (e.g. to adopt the objects the parent built for it). The child is forked at the
    first item, so it inherits what the parent built before that. Items travel pickled. ``close()`` ends the
    child; one whose parent dies ends too, at the end of its input."""

    def __init__(
        self,
        evaluate: Callable[[str, T], bytes],
        crash_row: Callable[[str, int], bytes],
        before_each_child: Callable[[], None] = lambda: None,
    ) -> None:
        self._evaluate, self._crash_row, self._before = evaluate, crash_row, before_each_child
        self._child: _Child | None = None

    def rows(self, items: Iterable[tuple[str, T]]) -> Iterator[tuple[str, bytes]]:
        """(id, row) for every item, in order. The child is idle whenever a row is yielded."""
        for key, item in items:
            row = self._ask(key, item)
            if row is None:
                self._end()
                row = self._ask(key, item)  # again, first in a new child
                if row is None:
                    row = self._crash_row(key, self._end())
            yield key, row

    def close(self) -> None:
        """End the child and reap it: it is idle between items, so the end of its input ends it (a child that
        does not end within ``_GRACE`` seconds is killed)."""
        if self._child is not None:
            self._child.stop()
            self._end()

    def _ask(self, key: str, item: T) -> bytes | None:
        """The child's row for one item, or None when the child died on it (the child is then left to _end)."""
        if self._child is None:
            self._child = _Child.start(self._evaluate, self._before)
        return self._child.ask(pickle.dumps((key, item), pickle.HIGHEST_PROTOCOL))

    def _end(self) -> int:
        """Reap the child (dead, or stopped); its exit status."""
        child, self._child = self._child, None
        return child.reap() if child is not None else 0


def supervised(
    items: Sequence[tuple[str, T]],
    evaluate: Callable[[str, T], bytes],
    crash_row: Callable[[str, int], bytes],
    before_each_child: Callable[[], None] = lambda: None,
) -> Iterator[tuple[str, bytes]]:
    """(id, row) for every item, evaluated in a forked child that ends with the rows (also when the consumer
    stops early); ``crash_row(id, exit status)`` for an item whose child died twice."""
    supervisor = Supervisor(evaluate, crash_row, before_each_child)
    try:
        yield from supervisor.rows(items)
    finally:
        supervisor.close()


class _Child:
    """The parent's side of one forked child: a pipe to send it items, one to read its rows."""

    def __init__(self, pid: int, to_child: IO[bytes], from_child: IO[bytes]) -> None:
        self.pid, self._to, self._from = pid, to_child, from_child
        self.reaped = False  # by stop(), which waited for it

    @classmethod
    def start(cls, evaluate: Callable[[str, Any], bytes], before: Callable[[], None]) -> _Child:
        items_r, items_w = os.pipe()
        rows_r, rows_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(items_w)
            os.close(rows_r)
            _serve(evaluate, before, os.fdopen(items_r, "rb"), os.fdopen(rows_w, "wb"))
        os.close(items_r)
        os.close(rows_w)
        return cls(pid, os.fdopen(items_w, "wb"), os.fdopen(rows_r, "rb"))

    def ask(self, item: bytes) -> bytes | None:
        try:
            self._to.write(len(item).to_bytes(_LEN, "big") + item)
            self._to.flush()
        except BrokenPipeError:  # it died before this item (a kill between items): this item is retried
            return None
        if self._from.read(1) != _ROW:
            return None  # end of file: it died on this item (or an exception escaped evaluate)
        size = int.from_bytes(self._from.read(_LEN), "big")
        row = self._from.read(size)
        return row if len(row) == size else None  # cut short: it died while writing

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._to.close()  # the end of its input: it exits normally (os._exit(0)), as a finished child does
        deadline = time.monotonic() + _GRACE
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                _kill(self.pid)
                break
            time.sleep(0.001)
        else:
            self.reaped = True

    def reap(self) -> int:
        for pipe in (self._to, self._from):
            with contextlib.suppress(OSError):  # a write buffered for a dead child fails to flush
                pipe.close()
        if self.reaped:
            return 0
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already dead, not yet reaped
        os.kill(pid, signal.SIGKILL)


def _serve(evaluate: Callable[[str, Any], bytes], before: Callable[[], None], items: IO[bytes], out: IO[bytes]) -> None:
    """The child: evaluate each item read until the end of the input, writing its row before reading the next."""
    code = 0
    try:
        before()
        while True:
            head = items.read(_LEN)
            if len(head) < _LEN:
                break  # the parent closed the pipe (or died): done
            key, item = pickle.loads(items.read(int.from_bytes(head, "big")))
            row = evaluate(key, item)
            out.write(_ROW + len(row).to_bytes(_LEN, "big") + row)
            out.flush()  # once the parent has it, this item is never evaluated again
    except BaseException:  # an exception escaping evaluate counts as a death of the child, like a crash
        code = 70
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's inherited buffers
