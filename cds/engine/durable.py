"""The one adapter around durable_rules. Nothing else in the project imports it.

It drives the engine's C core (`durable_rules_engine`) directly, making the calls the package's Python layer
(`durable.engine`) would make, without that layer's polling threads and per-action JSON round trips.

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
* The package's Python layer swallows exceptions raised in actions into the session state, and its Host runs
  two polling threads that may execute actions in the background: the adapter runs the action cycle itself,
  synchronously in `run()`; actions record their errors and `run()` re-raises them after abandoning the action.
* The engine mutates the definition it is given: a fresh definition is compiled for every ruleset.
* Joins on the `id` property are wrong: the engine treats `id` as its own message id and a join on it fires
  for every pair or for none, depending on arrival order (measured; see tests/engine/test_durable_adapter.py).
  Our fact identity travels as `fact_id` inside the engine and is renamed at this boundary.
* An `$or` fires the rule once per true branch: the adapter keeps one activation per (rule, bound facts).
* A comparison with a field that is missing on the referenced fact (`a < b` without `b`) is true in the engine:
  every field a test refers to is also required to exist (`$ex`) on the fact that holds it.
* Deleting a session in which no action ever ran frees uninitialised pointers (state.c `deleteStateNode` frees
  `context.messages`, which only the action cycle initialises; completing an action frees and clears it): a
  session in which no rule fired gets a sentinel fact whose rule's action runs, so every session can be
  deleted safely.
* Not thread-safe: one lock per evaluator serialises evaluations.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import durable_rules_engine as _dre
import orjson
from orjson import dumps, loads  # module globals: cheaper than orjson's attribute lookups, compiled

from cds.engine.base import (
    Activation,
    FactView,
    StageResult,
    StageRules,
    build_derived,
    derive_items,
    derived_id,
    sort_activations,
)
from cds.engine.ir import Expr, Rule, Test
from cds.engine.prefilter import Prefilter
from cds.errors import EngineError, KnowledgeError

_CMP = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}
_ARITH = {"add": "$add", "sub": "$sub", "mul": "$mul", "div": "$div"}
_HANDLED, _OBSERVED = 0, 2  # assert_fact codes; 1 = no rule reads the fact
_MAX_SALT = 8
_ID = "fact_id"  # what our fact `id` is called inside durable_rules
_SENTINEL = "__session__"


def _field(name: str) -> str:
    return _ID if name == "id" else name


_POOL_SIZE = 256
_ids = itertools.count()


def fnv1a_32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


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


def compile_rule(rule: Rule) -> dict[str, Any]:
    required = _required_fields(rule)
    clauses = [{p.bind: _pattern(p.type, p.all, p.any, sorted(required.get(p.bind, ())))} for p in rule.when]
    return {"all": clauses, "pri": rule.pri}


# ------------------------------------------------------------------------------------ evaluator


def _engine_fields(rules: StageRules) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per fact type, the fields the engine needs as (our name, engine name): those the rules test or refer to
    (in any pattern of any rule), plus identity. Everything else stays in Python: the C engine parses every
    field it receives, and actions read whole facts from the session's own table, so sending the rest would
    only cost time."""
    fields: dict[str, set[str]] = {}
    for rule in rules.rules:
        types = {p.bind: p.type for p in rule.when}
        for p in rule.when:
            fields.setdefault(p.type, {"type", "id"}).update(t.field for t in (*p.all, *p.any))
        for bind, names in _required_fields(rule).items():
            if bind in types:  # a ref to an unknown bind is a lint error; it matches nothing
                fields.setdefault(types[bind], {"type", "id"}).update(names)
    return {t: tuple((n, _field(n)) for n in sorted(names)) for t, names in fields.items()}


class _Session:
    """One evaluation's state on the Python side: its sid, its facts by id, and what its actions recorded."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.facts: dict[str, FactView] = {}
        self.activations: list[Activation] = []
        self.seen: set[Activation] = set()
        self.derived: list[FactView] = []
        self.errors: list[str] = []


_Action = Callable[[_Session, dict[str, Any]], None]


class DurableEvaluator:
    """Drives the durable_rules C engine directly (`durable_rules_engine`), without the package's Python host:
    that layer adds two polling threads, a JSON round trip of the session state per action and closures we do
    not use. The calls and their order are the ones the package's own `Ruleset.do_actions` makes."""

    name = "durable"

    def __init__(self, rules: StageRules, ruleset_name: str | None = None) -> None:
        self.rules = rules
        self._order = rules.order
        self._fields = _engine_fields(rules)
        self._prefilter = Prefilter([p for r in rules.rules for p in r.when])
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._pool = _sid_pool(_POOL_SIZE)
        self._name = ruleset_name or f"{rules.stage}_{next(_ids)}"
        self._actions: dict[str, _Action] = {r.id: self._action(r) for r in rules.rules}
        self._actions[_SENTINEL] = lambda _session, _bound: None
        self._handle: int | None = None
        if not rules.rules:
            return
        definition = {r.id: compile_rule(r) for r in rules.rules}
        definition[_SENTINEL] = {"all": [{"m": {"type": _SENTINEL}}], "pri": 65535}
        self._handle = _dre.create_ruleset(self._name, orjson.dumps(definition).decode())

    def _action(self, rule: Rule) -> _Action:
        binds = tuple(p.bind for p in rule.patterns)
        rule_id = rule.id
        items = derive_items(rule.derive) if rule.derive is not None else None

        def action(session: _Session, message: dict[str, Any]) -> None:
            try:
                ids = tuple([(b, str(message[b][_ID])) for b in binds])
                activation = Activation(rule_id, ids)
                if activation in session.seen:
                    return  # an `$or` fires once per true branch: the rule fires once per set of facts
                session.seen.add(activation)
                session.activations.append(activation)
                if items is not None:
                    # derive_fact's fact, from the ids at hand (each is its fact's `str(id)`, the key in session.facts)
                    facts = session.facts
                    fact_id = derived_id(rule_id, [fid for _, fid in ids])
                    fact = build_derived(fact_id, items, {b: facts[fid] for b, fid in ids})
                    session.derived.append(fact)
                    if self._wanted(fact):  # else no rule of this stage can match it
                        self._assert(session, fact)
            except Exception as exc:  # recorded and re-raised by run(): an action must not unwind the C engine
                session.errors.append(f"{rule_id}: {type(exc).__name__}: {exc}")

        return action

    def run(self, facts: Sequence[FactView]) -> StageResult:
        if self._handle is None:
            return StageResult()
        with self._lock:
            sid = self._pool.pop()
            session = self._sessions[sid] = _Session(sid)
            offset = None
            try:
                for fact in self._ordered(facts):
                    offset = self._assert(session, fact, offset)
                if offset is None or not self._run_actions(session, offset):
                    # No action ran: the sentinel's runs, so that the session can be deleted (module docstring).
                    offset = self._assert(session, {"type": _SENTINEL, "id": _SENTINEL}, offset)
                    if offset is not None:
                        self._run_actions(session, offset)
                if session.errors:
                    raise EngineError("rule action failed: " + "; ".join(session.errors))
                return sort_activations(StageResult(session.activations, session.derived), self._order)
            finally:
                self._sessions.pop(sid, None)
                if offset is not None:
                    # Only a session that holds a fact exists (the sentinel guarantees one after a normal run).
                    _dre.delete_state(self._handle, sid)
                self._pool.append(sid)

    def _run_actions(self, session: _Session, offset: int) -> int:
        """The engine's action cycle: start, run our action, hand the (unchanged) state back, complete. Returns
        how many actions ran."""
        assert self._handle is not None
        started = _dre.start_action_for_state(self._handle, offset)
        if not started:
            return 0
        state, pending = started[0], started[1]
        ran = 0
        try:
            while pending:
                ran += 1
                message = loads(pending)
                if not isinstance(message, dict) or not message:
                    raise EngineError(f"durable_rules returned an unexpected action message: {str(message)[:200]}")
                name, bound = next(iter(message.items()))
                action = self._actions.get(name)
                if action is None or not isinstance(bound, dict):
                    raise EngineError(f"durable_rules started an unknown action {name!r}")
                action(session, bound)
                _dre.update_state(self._handle, state)
                pending = _dre.complete_and_start_action(self._handle, offset)
        except BaseException:
            _dre.abandon_action(self._handle, offset)
            raise
        return ran

    def _wanted(self, fact: FactView) -> bool:
        """Whether some rule of this stage could match the fact (cds.engine.prefilter): the others are not sent."""
        return self._prefilter.may_match(fact)

    def _ordered(self, facts: Sequence[FactView]) -> list[FactView]:
        """Only facts some rule could match (an unmatched fact leaves a half-made session behind), in a stable
        order so that runs are reproducible whatever order the caller used."""
        return sorted((f for f in facts if self._wanted(f)), key=lambda f: (str(f["type"]), str(f["id"])))

    def _assert(self, session: _Session, fact: FactView, offset: int | None = None) -> int | None:
        """Assert one fact (only the fields rules read); returns the session's state offset once known."""
        session.facts[str(fact["id"])] = fact
        wanted = self._fields.get(str(fact["type"]), ())  # the sentinel: type and id
        payload = (
            {ours: fact[name] for name, ours in wanted if name in fact}
            if wanted
            else {_field(k): v for k, v in fact.items()}
        )
        payload["sid"] = session.sid
        for salt in range(_MAX_SALT):
            if salt:
                payload["_salt"] = salt
            code, state_offset = _dre.assert_fact(self._handle, engine_json(payload))
            if code == _OBSERVED:
                continue  # unique id, so this is a hash collision (#376): retry with a salt
            if code == _HANDLED:
                return state_offset if offset is None else offset
            return offset  # not handled: no rule reads this fact
        raise EngineError(f"fact {fact['id']} rejected {_MAX_SALT} times as a duplicate")

    def close(self) -> None:
        """Free the C ruleset (durable_rules never frees it on its own)."""
        if self._handle is not None:
            _dre.delete_ruleset(self._handle)
            self._handle = None


def engine_json(payload: dict[str, Any]) -> str:
    """A fact as JSON durable_rules parses: every number it holds keeps its value, written with a decimal point
    before any exponent ("2.0e-29"), which the engine's parser reads correctly.

    orjson writes very small and very large floats with an exponent and no decimal point ("2e-29", "1e+30"), which
    durable_rules' JSON parser rejects (error 204), failing the evaluation. Only floats are written with an
    exponent, so the payload's floats are checked (few per fact) rather than its text searched (a regular
    expression over every fact's JSON cost 0.55 % of an evaluation's instructions)."""
    if _has_exponent(payload):
        return _json_value(payload)
    return dumps(payload).decode()


def _has_exponent(value: Any) -> bool:
    """Whether orjson writes a float inside ``value`` with an exponent.

    Called for every asserted fact, so written for the compiled build: strings, ints, bools and None (most values)
    are told by their type's identity before any call, a float in the range orjson always writes plainly is not
    serialised to be looked at, and isinstance takes a tuple (`list | tuple` builds a union object per call in
    compiled code; this function cost 3 % of an evaluation's instructions with it)."""
    t = type(value)
    if t is float:
        return _float_has_exponent(value)
    if isinstance(value, dict):
        items: Iterable[Any] = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return False
    for item in items:
        it = type(item)
        if it is str or it is int or it is bool or item is None:
            continue
        if _has_exponent(item):
            return True
    return False


def _float_has_exponent(value: float) -> bool:
    # orjson writes every float from 1e-5 up to 1e16 without an exponent (tests/engine/test_durable_adapter.py
    # checks the narrower range used here, and its ends); outside it, its text is looked at.
    size = abs(value)
    if size == 0.0 or 1e-4 <= size < 1e15:
        return False
    return b"e" in dumps(value)


def _json_value(value: Any) -> str:
    if type(value) is float:
        text = orjson.dumps(value).decode()
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(str(k)).decode()}:{_json_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_value(v) for v in value) + "]"
    return orjson.dumps(value).decode()


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
