"""The one adapter around durable_rules. Nothing else in the project imports `durable`.

durable_rules 2.0.28 has defects that matter for clinical use (see docs/engine.md); each is neutralised here:

* Out-of-bounds read in the C core when the last cross-fact test of an `$and` is false (issue #381):
  cross-fact tests are compiled last and the last one is repeated, so a false test is never last.
* Negation (`none`) is unusable: asserted in one order it fires although the negated fact is present
  (pitfall P2); in the other order `delete_state` corrupts the heap and the process aborts (measured here).
  The rule IR therefore has no negation; absence is expressed as a fact field computed from the record.
* Sessions are found by a 32-bit hash of the sid and at most 1,024 live sessions exist per ruleset: sids
  come from a fixed pool whose hashes are checked to be distinct, and every session is deleted in `finally`.
* Distinct facts whose hashes collide are silently rejected as duplicates (issue #376): every fact carries a
  unique id, so a "duplicate" answer can only be a collision, and the fact is re-asserted with a salt.
* Exceptions raised in actions are swallowed into the session state: actions record errors and the adapter
  re-raises them (and checks the state's `exception` too).
* The stock Host runs two polling threads that may execute actions in the background: a Host subclass
  without them is used and actions run synchronously in `run()`.
* The engine mutates the definition it is given: a fresh definition is compiled for every ruleset.
* Joins on the `id` property are wrong: the engine treats `id` as its own message id and a join on it fires
  for every pair or for none, depending on arrival order (measured; see tests/engine/test_durable_adapter.py).
  Our fact identity travels as `fact_id` inside the engine and is renamed at this boundary.
* An `$or` fires the rule once per true branch: the adapter keeps one activation per (rule, bound facts).
* A comparison with a field that is missing on the referenced fact (`a < b` without `b`) is true in the engine:
  every field a test refers to is also required to exist (`$ex`) on the fact that holds it.
* Deleting a session in which no action ever ran frees uninitialised pointers (state.c `deleteStateNode` frees
  `context.messages`, which only the action cycle initialises): a sentinel fact and rule make every session
  run one action, so every session can be deleted safely.
* Not thread-safe: one lock per evaluator serialises evaluations.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import durable_rules_engine as _dre
import orjson
from durable import engine as _engine

from cds.engine.base import Activation, FactView, StageResult, StageRules, derive_fact, sort_activations
from cds.engine.ir import Expr, Rule, Test
from cds.errors import EngineError, KnowledgeError

_CMP = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}
_ARITH = {"add": "$add", "sub": "$sub", "mul": "$mul", "div": "$div"}
_HANDLED, _NOT_HANDLED, _OBSERVED = 0, 1, 2
_MAX_SALT = 8
_ID = "fact_id"  # what our fact `id` is called inside durable_rules
_SENTINEL = "__session__"
_ENGINE_ONLY = ("sid", "id", "_salt", "$s")


def _field(name: str) -> str:
    return _ID if name == "id" else name


def to_engine(fact: FactView) -> dict[str, Any]:
    return {_field(k): v for k, v in fact.items()}


def from_engine(data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if k not in _ENGINE_ONLY}
    if _ID in out:
        out["id"] = out.pop(_ID)
    return out


_POOL_SIZE = 256
_ids = itertools.count()


def fnv1a_32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


class _SyncHost(_engine.Host):  # type: ignore[misc]
    """A Host without the background dispatcher threads (Host._run re-arms two timers every 0.2 s)."""

    def _run(self) -> None:
        return None


# ------------------------------------------------------------------------------------ compiler


def _operand(x: Any) -> Any:
    if isinstance(x, Expr):
        return _expr(x)
    if isinstance(x, str):
        bind, dot, fname = x.partition(".")
        return {bind: _field(fname)} if dot else {"$m": _field(x)}
    return x


def _expr(e: Expr) -> dict[str, Any]:
    return {_ARITH[e.op]: {"$l": _operand(e.left), "$r": _operand(e.right)}}


def _is_cross_fact(test: Test) -> bool:
    def refers(x: Any) -> bool:
        if isinstance(x, Expr):
            return refers(x.left) or refers(x.right)
        return isinstance(x, str) and "." in x

    return (test.ref is not None and "." in test.ref) or (test.expr is not None and refers(test.expr))


def _test(t: Test) -> dict[str, Any]:
    name = _field(t.field)
    if t.op == "exists":
        return {"$ex": {name: 1}}
    if t.op == "missing":
        return {"$nex": {name: 1}}
    if t.op in ("in", "not_in"):
        assert isinstance(t.value, list)
        if t.op == "in":
            return {"$or": [{name: v} for v in t.value]}
        return {"$and": [{"$neq": {name: v}} for v in t.value]}
    rhs = _expr(t.expr) if t.expr is not None else _operand(t.ref) if t.ref is not None else t.value
    if t.op == "==":
        return {name: rhs}
    return {_CMP[t.op]: {name: rhs}}


def _referenced(x: Any, own: str, out: dict[str, set[str]]) -> None:
    """Collect the fields that tests refer to, per bind (`own` for same-fact references)."""
    if isinstance(x, Expr):
        _referenced(x.left, own, out)
        _referenced(x.right, own, out)
    elif isinstance(x, str) and not x.startswith("$"):
        bind, dot, name = x.partition(".")
        if dot:
            out.setdefault(bind, set()).add(name)
        else:
            out.setdefault(own, set()).add(x)


def _required_fields(rule: Rule) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in rule.when:
        for t in (*p.all, *p.any):
            if t.ref is not None:
                _referenced(t.ref, p.bind, out)
            if t.expr is not None:
                _referenced(t.expr, p.bind, out)
    return out


def _pattern(type_: str, all_: Sequence[Test], any_: Sequence[Test], required: Sequence[str] = ()) -> dict[str, Any]:
    """Order inside the `$and`: simple local tests, cross-fact tests (the last one repeated), compound tests.

    Two engine defects dictate it: a false last cross-fact test reads out of bounds (#381), and a compound
    test (`$or`, nested `$and`) placed before a cross-fact test makes the engine skip the cross-fact test,
    so the join fires for every pair (measured; tests/engine/test_durable_adapter.py)."""
    if any(_is_cross_fact(t) for t in any_):
        raise KnowledgeError("a test in an `any` group cannot refer to another fact (engine limitation)")
    compound = [t for t in all_ if t.op in ("in", "not_in")]
    cross = [t for t in all_ if _is_cross_fact(t)]
    local = [t for t in all_ if t not in compound and t not in cross]
    tests: list[dict[str, Any]] = [{"type": type_}, *({"$ex": {_field(f): 1}} for f in sorted(required))]
    tests += [_test(t) for t in local]
    if cross:
        tests += [_test(t) for t in cross]
        tests.append(tests[-1])  # issue #381: the copy is only reached when the original was true
    tests += [_test(t) for t in compound]
    if any_:
        tests.append({"$or": [_test(t) for t in any_]})
    return tests[0] if len(tests) == 1 else {"$and": tests}


def compile_rule(rule: Rule, action: Callable[[Any], None]) -> dict[str, Any]:
    required = _required_fields(rule)
    clauses = [{p.bind: _pattern(p.type, p.all, p.any, sorted(required.get(p.bind, ())))} for p in rule.when]
    return {"all": clauses, "pri": rule.pri, "run": action}


# ------------------------------------------------------------------------------------ evaluator


class DurableEvaluator:
    name = "durable"

    def __init__(self, rules: StageRules, ruleset_name: str | None = None) -> None:
        self.rules = rules
        self._types = {p.type for r in rules.rules for p in r.when}
        self._lock = threading.Lock()
        self._sinks: dict[str, _Sink] = {}
        self._pool = _sid_pool(_POOL_SIZE)
        self._host = _SyncHost()
        self._name = ruleset_name or f"{rules.stage}_{next(_ids)}"
        definition = {r.id: compile_rule(r, self._action(r)) for r in rules.rules}
        if not definition:
            self._ruleset: Any = None
            return
        definition[_SENTINEL] = {"all": [{"m": {"type": _SENTINEL}}], "pri": 65535, "run": lambda _c: None}
        self._host.set_rulesets({self._name: definition})
        self._ruleset = self._host.get_ruleset(self._name)

    def _action(self, rule: Rule) -> Callable[[Any], None]:
        binds = [p.bind for p in rule.patterns]

        def action(c: Any) -> None:
            sink = self._sinks.get(c.s.sid)
            if sink is None:
                return
            try:
                bound = {b: from_engine(getattr(c, b)._d) for b in binds}
                activation = Activation(rule.id, tuple((b, str(bound[b]["id"])) for b in binds))
                if activation in sink.seen:
                    return  # an `$or` fires once per true branch: the rule fires once per set of facts
                sink.seen.add(activation)
                sink.activations.append(activation)
                if rule.derive is not None:
                    fact = derive_fact(rule, bound)
                    sink.derived.append(fact)
                    self._assert_in_action(c, fact)
            except Exception as exc:  # recorded and re-raised by run(): durable would swallow it
                sink.errors.append(f"{rule.id}: {type(exc).__name__}: {exc}")

        return action

    @staticmethod
    def _assert_in_action(c: Any, fact: FactView) -> None:
        for salt in range(_MAX_SALT):
            payload = to_engine(fact)
            if salt:
                payload["_salt"] = salt
            try:
                c.assert_fact(payload)
                return
            except _engine.MessageNotHandledException:
                return  # no rule consumes this derived fact: nothing to do
            except _engine.MessageObservedException:
                continue  # unique id, so this is a hash collision (#376): retry with a salt
        raise EngineError(f"derived fact {fact['id']} rejected {_MAX_SALT} times as a duplicate")

    def run(self, facts: Sequence[FactView]) -> StageResult:
        if self._ruleset is None:
            return StageResult()
        with self._lock:
            sid = self._pool.pop()
            sink = self._sinks[sid] = _Sink()
            offset = None
            try:
                for fact in self._ordered(facts):
                    offset = self._assert(sid, fact, offset)
                # Every session runs at least the sentinel's action (see the module docstring).
                offset = self._assert(sid, {"type": _SENTINEL, "id": _SENTINEL}, offset)
                if offset is not None:
                    errors: list[Any] = []
                    self._ruleset.do_actions(offset, lambda e, _s: errors.append(e))
                    if errors and errors[0] is not None:
                        raise EngineError(f"durable_rules failed while running actions: {errors[0]}")
                if sink.errors:
                    raise EngineError("rule action failed: " + "; ".join(sink.errors))
                state = self._ruleset.get_state(sid) if offset is not None else {}
                if state.get("exception"):
                    raise EngineError(f"rule action failed inside the engine: {str(state['exception'])[:300]}")
                return sort_activations(StageResult(sink.activations, sink.derived), self.rules)
            finally:
                self._sinks.pop(sid, None)
                if offset is not None:
                    # Only a session that holds a fact exists (the sentinel guarantees one after a normal run).
                    self._ruleset.delete_state(sid)
                self._pool.append(sid)

    def _ordered(self, facts: Sequence[FactView]) -> list[FactView]:
        """Only facts some rule reads (an unmatched fact leaves a half-made session behind), in a stable order
        so that runs are reproducible whatever order the caller used."""
        return sorted((f for f in facts if f["type"] in self._types), key=lambda f: (str(f["type"]), str(f["id"])))

    def _assert(self, sid: str, fact: FactView, offset: int | None) -> int | None:
        for salt in range(_MAX_SALT):
            payload = to_engine(fact)
            payload["sid"] = sid
            if salt:
                payload["_salt"] = salt
            code, state_offset = _dre.assert_fact(self._ruleset._handle, orjson.dumps(payload).decode())
            if code == _OBSERVED:
                continue  # unique id, so this is a hash collision (#376): retry with a salt
            if code == _HANDLED:
                return state_offset if offset is None else offset
            return offset  # _NOT_HANDLED: no rule reads this fact
        raise EngineError(f"fact {fact['id']} rejected {_MAX_SALT} times as a duplicate")

    def close(self) -> None:
        """Free the C ruleset (durable_rules never frees it on its own)."""
        if self._ruleset is not None:
            _dre.delete_ruleset(self._ruleset._handle)
            self._ruleset = None


class _Sink:
    def __init__(self) -> None:
        self.activations: list[Activation] = []
        self.seen: set[Activation] = set()
        self.derived: list[FactView] = []
        self.errors: list[str] = []


def _sid_pool(size: int) -> list[str]:
    """Session ids whose FNV-1a-32 hashes are pairwise distinct (the engine compares only the hash)."""
    seen: set[int] = set()
    pool: list[str] = []
    for i in itertools.count():
        sid = f"s{i}"
        h = fnv1a_32(sid)
        if h not in seen:
            seen.add(h)
            pool.append(sid)
        if len(pool) == size:
            break
    pool.reverse()
    return pool
