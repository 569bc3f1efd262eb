"""Hot reload of the rules: versioned rulesets swapped atomically, the running ones kept on any error.

`RulesetManager` watches a rules directory (and the FHIR profiles directory) by polling file mtimes and
sizes. When something changed, it lints the rules (cds.authoring.lint, errors only) and compiles a new
Evaluator; only if both succeed is the new one swapped in, under a lock, with the next version number. On any
error the old Evaluator stays in service and the error is kept in `last_error` (and passed to `on_error`).

Retired evaluators hold durable_rules rulesets, which durable_rules never frees on its own. A retired ruleset is
released once no evaluation is using it: evaluations that go through `lease()` are counted, and an evaluator
handed out by `current()` is given `grace_seconds` to finish; released means closed (DurableEvaluator.close()
deletes the C ruleset). The intermittent aborts once seen here came from deleting sessions in which no action
had run (see cds/engine/durable.py); with that fixed, 40 build-evaluate-close cycles run clean and valgrind
reports no invalid access, so freeing is the default (`free_retired=False` keeps the old, leaking behaviour).

Usage in a server:

    manager = RulesetManager(rules_dir)
    manager.start(interval=2.0)          # background polling; or call reload_if_changed() yourself
    with manager.lease() as evaluator:   # per request
        result = evaluator.evaluate_resources(resources, now)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cds.engine.runner import EvaluatorKind
from cds.evaluation import Evaluator
from cds.knowledge import load_knowledge
from cds.knowledge.loader import default_profiles_dir, default_rules_dir

log = logging.getLogger(__name__)
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass
class Ruleset:
    version: int
    evaluator: Evaluator
    fingerprint: Fingerprint
    loaded_at: float
    leases: int = 0
    retired_at: float | None = None
    closed: bool = False  # released: no evaluation uses it any more (its C rulesets freed if free_retired)

    @property
    def knowledge_version(self) -> str:
        return self.evaluator.knowledge.version


@dataclass
class ReloadError:
    at: float
    message: str
    problems: list[str] = field(default_factory=list)


def _fingerprint(*dirs: Path) -> Fingerprint:
    out: list[tuple[str, int, int]] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            try:
                if p.is_file():
                    st = p.stat()
                    out.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                continue
    return tuple(out)


def close_evaluator(evaluator: Evaluator) -> None:
    """Free the durable rulesets an Evaluator holds (a no-op for the reference evaluator)."""
    for stage_evaluator in evaluator.engine.evaluators.values():
        close = getattr(stage_evaluator, "close", None)
        if callable(close):
            close()


class RulesetManager:
    def __init__(
        self,
        rules_dir: Path | None = None,
        kind: EvaluatorKind = "durable",
        profiles_dir: Path | None = None,
        grace_seconds: float = 30.0,
        on_error: Callable[[ReloadError], None] | None = None,
        lint: bool = True,
        free_retired: bool = True,
    ) -> None:
        self.rules_dir = (rules_dir or default_rules_dir()).resolve()
        self.profiles_dir = (profiles_dir or default_profiles_dir()).resolve()
        self.kind: EvaluatorKind = kind
        self.grace_seconds = grace_seconds
        self.on_error = on_error
        self.lint = lint
        self.free_retired = free_retired
        self.last_error: ReloadError | None = None
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._retired: list[Ruleset] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        fingerprint = self._fingerprint()
        self._active = Ruleset(1, self._build(), fingerprint, time.time())  # the first load must succeed

    # -- the API for servers ------------------------------------------------------------------------
    def current(self) -> Evaluator:
        """The evaluator in service. For evaluations that may overlap a reload, prefer `lease()`."""
        with self._lock:
            return self._active.evaluator

    @property
    def version(self) -> int:
        with self._lock:
            return self._active.version

    @property
    def active(self) -> Ruleset:
        with self._lock:
            return self._active

    @contextmanager
    def lease(self) -> Iterator[Evaluator]:
        """The evaluator in service, kept open until the block ends even if a reload retires it meanwhile."""
        with self._lock:
            ruleset = self._active
            ruleset.leases += 1
        try:
            yield ruleset.evaluator
        finally:
            with self._lock:
                ruleset.leases -= 1
            self.collect()

    def reload_if_changed(self) -> bool:
        """Reload when a rules or profiles file changed. True if a new ruleset was swapped in; False if nothing
        changed or the new rules were rejected (see `last_error`; the old ruleset stays in service)."""
        with self._reload_lock:
            fingerprint = self._fingerprint()
            if fingerprint == self.active.fingerprint or (
                self.last_error is not None and fingerprint == self._rejected
            ):
                self.collect()
                return False
            return self._reload(fingerprint)

    def reload(self) -> bool:
        """Reload now, whether or not files changed."""
        with self._reload_lock:
            return self._reload(self._fingerprint())

    def collect(self) -> int:
        """Close retired evaluators nobody uses any more; returns how many were closed."""
        now = time.time()
        to_close: list[Ruleset] = []
        with self._lock:
            for r in self._retired:
                if r.leases == 0 and r.retired_at is not None and now - r.retired_at >= self.grace_seconds:
                    to_close.append(r)
            self._retired = [r for r in self._retired if r not in to_close]
        for r in to_close:
            if self.free_retired:
                close_evaluator(r.evaluator)
            r.closed = True
            log.info("closed ruleset v%d (%s)", r.version, r.knowledge_version)
        return len(to_close)

    def retired(self) -> list[Ruleset]:
        with self._lock:
            return list(self._retired)

    def start(self, interval: float = 2.0) -> None:
        """Poll for changes on a daemon thread every `interval` seconds."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload_if_changed()
                except Exception:  # the watcher must never die
                    log.exception("rules reload failed")

        self._thread = threading.Thread(target=loop, name="cds-rules-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop polling and free every ruleset (after in-flight leases end)."""
        self.stop()
        with self._lock:
            self._retire(self._active)
            for r in self._retired:
                r.retired_at = 0.0
        deadline = time.time() + self.grace_seconds
        while self.retired() and time.time() < deadline:
            self.collect()
            if self.retired():
                time.sleep(0.05)

    # -- internals -------------------------------------------------------------------------------------
    _rejected: Fingerprint = ()

    def _fingerprint(self) -> Fingerprint:
        return _fingerprint(self.rules_dir, self.profiles_dir)

    def _build(self) -> Evaluator:
        knowledge = load_knowledge(self.rules_dir, self.profiles_dir)
        if self.lint:
            from cds.authoring.lint import lint  # authoring tools are only needed when rules change

            problems = lint(self.rules_dir, self.profiles_dir, compile_rules=False, knowledge=knowledge)
            errors = [p for p in problems if p.severity == "error"]
            if errors:
                raise _Rejected(f"{len(errors)} lint error(s)", [str(p) for p in errors])
        return Evaluator(knowledge, kind=self.kind)

    def _reload(self, fingerprint: Fingerprint) -> bool:
        try:
            evaluator = self._build()
        except _Rejected as exc:
            return self._fail(fingerprint, str(exc), exc.problems)
        except Exception as exc:
            return self._fail(fingerprint, f"{type(exc).__name__}: {exc}", [])
        with self._lock:
            old = self._active
            self._active = Ruleset(old.version + 1, evaluator, fingerprint, time.time())
            self._retire(old)
            self.last_error = None
            self._rejected = ()
        log.info("rules reloaded: v%d (%s)", self._active.version, self._active.knowledge_version)
        self.collect()
        return True

    def _retire(self, ruleset: Ruleset) -> None:
        ruleset.retired_at = time.time()
        self._retired.append(ruleset)

    def _fail(self, fingerprint: Fingerprint, message: str, problems: list[str]) -> bool:
        error = ReloadError(time.time(), message, problems)
        with self._lock:
            self.last_error = error
            self._rejected = fingerprint
        log.error("rules reload rejected, v%d stays in service: %s %s", self.version, message, problems[:5])
        if self.on_error is not None:
            self.on_error(error)
        return False


class _Rejected(Exception):
    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems
