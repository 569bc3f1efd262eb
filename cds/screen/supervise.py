"""Evaluate a list of patients in a forked child process, so that a patient that kills its process (a crash in
a C extension, as durable_rules' core could) costs one error row instead of the whole task.

Used by the Spark reduce side, where a dead Python worker fails the task, Spark retries it, the retry dies on
the same patient, and the job fails; and by the local runner's workers, whose death would stop the run
(cds/screen/local.py).

The child writes each row to a pipe as soon as it has it. When the child dies, the patient it was on is the
one after the last row received: that patient is evaluated once more, alone, in another child (its death may
have had another cause: a kill, the out-of-memory killer), and a second death gives it ``crash_row``. A new child
then goes on with the patients after it. Rows come out in the order of ``items``, the same rows an unsupervised
run gives, whatever happened on the way.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import IO, TypeVar

T = TypeVar("T")
_ROW, _DONE = b"R", b"D"
_LEN = 4  # bytes of a row's length, big-endian


def supervised(
    items: Sequence[tuple[str, T]],
    evaluate: Callable[[str, T], bytes],
    crash_row: Callable[[str, int], bytes],
    before_each_child: Callable[[], None] = lambda: None,
) -> Iterator[tuple[str, bytes]]:
    """(id, row) for every item, evaluated in forked children; ``crash_row(id, exit status)`` for an item whose
    child died twice. ``before_each_child`` runs in each child before its first item (e.g. to adopt the objects
    the parent built for it)."""
    start = 0
    while start < len(items):
        death = yield from _child_rows(items, start, len(items), evaluate, before_each_child)
        if death is None:
            return
        died_at = death[0]
        again = yield from _child_rows(items, died_at, died_at + 1, evaluate, before_each_child)
        if again is not None:
            yield items[died_at][0], crash_row(items[died_at][0], again[1])
        start = died_at + 1


def _child_rows(
    items: Sequence[tuple[str, T]],
    start: int,
    stop: int,
    evaluate: Callable[[str, T], bytes],
    before: Callable[[], None],
) -> Generator[tuple[str, bytes], None, tuple[int, int] | None]:
    """Yield the rows of items[start:stop] from one child; return None when it finished them all, else (index of
    the item it died on, its exit status)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(items, start, stop, evaluate, before, os.fdopen(write_fd, "wb"))
    os.close(write_fd)
    finished = False
    nxt = start
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while True:
                kind = pipe.read(1)
                if kind == _ROW:
                    size = int.from_bytes(pipe.read(_LEN), "big")
                    row = pipe.read(size)
                    if len(row) != size:
                        break  # cut short: the child died while writing
                    yield items[nxt][0], row
                    nxt += 1
                    continue
                finished = kind == _DONE
                break
    finally:
        if not finished:
            _kill(pid)  # also when the consumer stopped early: no child outlives its rows
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if finished and nxt == stop and code == 0:
        return None
    return nxt, code


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already dead, not yet reaped
        os.kill(pid, signal.SIGKILL)


def _child(
    items: Sequence[tuple[str, T]],
    start: int,
    stop: int,
    evaluate: Callable[[str, T], bytes],
    before: Callable[[], None],
    out: IO[bytes],
) -> None:
    code = 0
    try:
        before()
        for i in range(start, stop):
            row = evaluate(*items[i])
            out.write(_ROW + len(row).to_bytes(_LEN, "big") + row)
            out.flush()  # once the parent has it, this patient is never evaluated again
        out.write(_DONE)
        out.flush()
    except BaseException:  # an exception escaping evaluate counts as a death of the child, like a crash
        code = 70
    finally:
        os._exit(code)  # no atexit handlers, no flushing of the parent's inherited buffers
