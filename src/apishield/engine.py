"""The security engine: synchronous, I/O-free, fed phase by phase.

An :class:`Engine` is compiled once from a :class:`~apishield.policy.Policy` and is
immutable; a hot reload builds a new one and swaps the reference. Each request gets
a :class:`Transaction`, which adapters feed in phase order::

    tx = engine.transaction(request_without_body)
    verdict = tx.request_headers() or tx.request_body(body)
    if verdict is None:  # not interrupted: forward, then
        verdict = tx.response_headers(response) or tx.response_body(body)
    event = tx.finish(status=...)      # always, in a ``finally``

An adapter that holds the whole body by the time it would run the first phase may
skip :meth:`~Transaction.request_headers`: :meth:`~Transaction.request_body` then
runs both request phases in one pass (one signature scan over the head's and the
body's values together), which is what :meth:`Engine.inspect` does.

Each phase returns a :class:`~apishield.findings.Verdict` when the adapter must answer
itself, or ``None``. Phases after an interruption return the same verdict and do
nothing else. Nothing here raises for bad input or a failing check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from apishield.checks import (
    Check,
    SensitivityShift,
    ValueCheck,
    ValueScanner,
    registered_checks,
)
from apishield.clientip import ClientResolver
from apishield.context import (
    SENSITIVITY,
    Endpoint,
    Judged,
    Kind,
    ParameterLearner,
    RequestContext,
    compile_declarations,
)
from apishield.errors import PolicyError
from apishield.events import SecurityEvent, new_event_id
from apishield.findings import Action, Finding, Location, Mode, Phase, Severity, Source, Verdict
from apishield.http import Request, Response
from apishield.inputs import InputRejected, InputValue
from apishield.normalize import decode_path, request_head_inputs
from apishield.parsers import body_inputs, decode_content, plain_json_texts
from apishield.policy import CheckSettings, Exclusion, Policy, Route, resolve_mode
from apishield.problem import problem_json
from apishield.routes import RouteTable, compile_template
from apishield.signatures import Hit

_MODE_RANK: Final = {Mode.OFF: 0, Mode.MONITOR: 1, Mode.BLOCK: 2}
_REQUEST_PHASES: Final = (Phase.REQUEST_HEADERS, Phase.REQUEST_BODY)
_RESPONSE_PHASES: Final = (Phase.RESPONSE_HEADERS, Phase.RESPONSE_BODY)


def _no_inputs() -> Sequence[InputValue]:
    """The inputs of a response phase: checks there read the response itself."""
    return ()


ONE_PASS_BODY_BYTES: Final = 65536
# Learning walks a clean plain JSON body it observes only up to this size: a larger
# one would add its whole walk to that request's latency for little to learn.
LEARNING_BODY_BYTES: Final = 8192


def judge_head_first(request: Request) -> bool:
    """True when an adapter should run the head phase before reading the body.

    That is for bodies that are large (over :data:`ONE_PASS_BODY_BYTES`), of unknown
    length (chunked) or awaited (``Expect: 100-continue``): a request blocked by its
    head is then answered without reading its body. Anything else is read first and
    judged in one pass with its head.
    """
    headers = request.headers
    expects_continue = (headers.get("expect") or "").lower() == "100-continue"
    length = headers.get("content-length")
    if length is None:
        return expects_continue or "transfer-encoding" in headers
    return head_first(int(length) if length.isdigit() else None, expects_continue)


def head_first(length: int | None, expects_continue: bool) -> bool:
    """:func:`judge_head_first` for a request that has a body, from its declared length
    (None: unknown) and whether the client awaits ``100 Continue`` (for adapters that
    read these from the raw head themselves)."""
    return expects_continue or length is None or length > ONE_PASS_BODY_BYTES


ERROR_CHECK_ID: Final = "engine.check_error"


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """What a matched route decides: the modes in force per direction, the upstream."""

    request: Mode
    response: Mode
    upstream: str = "default"


@dataclass(frozen=True, slots=True)
class _CompiledCheck:
    check: Check
    mode_cap: Mode  # a check's own mode can only lower the mode in force
    threshold: int


@dataclass(frozen=True, slots=True)
class _CompiledExclusion:
    check: str
    methods: frozenset[str]
    path: str
    matches_path: Callable[[str], object]
    source: Source | None
    name: str  # '' for any name; a trailing '*' matches a prefix

    def applies_to(self, method: str, path: str) -> bool:
        return ("*" in self.methods or method in self.methods) and bool(self.matches_path(path))

    def excludes(self, check_id: str, location: Location) -> bool:
        if self.check not in ("*", check_id):
            return False
        if self.source is not None and location.source is not self.source:
            return False
        if not self.name:
            return True
        if self.name.endswith("*"):
            return location.name.startswith(self.name[:-1])
        return location.name == self.name


def _compile_exclusion(exclusion: Exclusion) -> _CompiledExclusion:
    source: Source | None = None
    name = ""
    if exclusion.location != "*":
        source_name, _, name = exclusion.location.partition(":")
        try:
            source = Source(source_name)
        except ValueError:
            known = ", ".join(s.value for s in Source)
            raise PolicyError(
                "<policy>",
                [f"exclusions: unknown location source {source_name!r}; known: {known}"],
            ) from None
    if source in (Source.HEADER, Source.COOKIE, Source.COOKIE_KEY):
        name = name.lower() if source is Source.HEADER else name
    return _CompiledExclusion(
        check=exclusion.check,
        methods=frozenset(exclusion.methods),
        path=exclusion.path,
        matches_path=compile_template(exclusion.path).match,
        source=source,
        name=name,
    )


class Engine:
    """A compiled, immutable policy that opens transactions.

    ``clock`` (monotonic seconds) times the engine; ``wall_clock`` stamps events.
    ``checks`` replaces the registry of available checks (default: every registered
    check). All three are injectable for tests and embedding. ``scan_memo=False``
    turns off the memo of signature scans (:class:`~apishield.checks.ValueScanner`),
    for benchmarks that want the cost of values never seen before.

    Parameter kinds (:mod:`apishield.context`) come from the policy's declarations
    and, when ``learning`` is enabled, from :attr:`learner`, the engine's one piece
    of state that changes with traffic (a reload hands it on: :meth:`adopt_learning`).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        checks: Mapping[str, type[Check]] | None = None,
        scan_memo: bool = True,
    ) -> None:
        self.policy = policy
        self.limits: Final = policy.limits  # read on every request: one lookup fewer
        self.clock = clock
        self.wall_clock = wall_clock
        self.mode = policy.engine_mode()
        self.request_mode = resolve_mode(policy.directions.request, self.mode)
        self.response_mode = resolve_mode(policy.directions.response, self.mode)
        self.routes: RouteTable[_Endpoint] = RouteTable(
            (r.path, r.methods, self._endpoint(r)) for r in policy.routes
        )
        self.default_endpoint = _Endpoint(self.request_mode, self.response_mode)
        self.client_resolver = ClientResolver(policy.trusted_proxies)
        self.exclusions = tuple(_compile_exclusion(e) for e in policy.exclusions)
        available = registered_checks() if checks is None else checks
        self.checks = self._compile_checks(policy, available)
        compiled_values = [c for c in self.checks if isinstance(c.check, ValueCheck)]
        self.value_checks = {c.check.id: c for c in compiled_values}
        value_checks = [cast(ValueCheck, c.check) for c in compiled_values]
        self.value_scanner = ValueScanner(value_checks, memo=scan_memo)
        self.declarations = compile_declarations(policy.parameters)
        self.learner = ParameterLearner(policy.learning) if policy.learning.enabled else None
        self.contextual = self.learner is not None or bool(self.declarations)
        self.shift = self._compile_shift(policy, available, value_checks)
        self.checks_by_phase: dict[Phase, tuple[_CompiledCheck, ...]] = {
            phase: tuple(
                c
                for c in self.checks
                if phase in c.check.phases and c.check.id not in self.value_checks
            )
            for phase in Phase
        }
        self.wants_response_body = bool(self.checks_by_phase[Phase.RESPONSE_BODY]) and (
            self.response_mode is not Mode.OFF
        )
        self.records_all: Final = policy.events.record == "all"
        # response phases without a check: nothing to run, time or record
        self.idle_phases: Final = frozenset(
            phase for phase in _RESPONSE_PHASES if not self.checks_by_phase[phase]
        )

    def wants_event(self, event: SecurityEvent) -> bool:
        """True when the policy's ``events.record`` asks for ``event`` to be recorded."""
        return self.records_all or event.verdict != "allow"

    def _endpoint(self, route: Route) -> _Endpoint:
        if self.mode is Mode.OFF:
            return _Endpoint(Mode.OFF, Mode.OFF, route.upstream)
        return _Endpoint(
            resolve_mode(route.mode, self.request_mode),
            resolve_mode(route.mode, self.response_mode),
            route.upstream,
        )

    def _compile_shift(
        self,
        policy: Policy,
        available: Mapping[str, type[Check]],
        value_checks: Sequence[ValueCheck],
    ) -> SensitivityShift | None:
        """The judge of values whose parameter kind asks for the other sensitivity,
        when some kind can (a declared one, or ``id`` when learning)."""
        kinds = {d.kind for d in self.declarations}
        if self.learner is not None:
            kinds.add(Kind.ID)
        others = {SENSITIVITY[kind] for kind in kinds} - {policy.sensitivity}
        if not others or not value_checks:
            return None
        shifted_policy = policy.model_copy(update={"sensitivity": others.pop()})
        classes = {c.id: available[c.id] for c in value_checks}
        shifted = [c.check for c in self._compile_checks(shifted_policy, classes)]
        return SensitivityShift(value_checks, [cast(ValueCheck, c) for c in shifted])

    def adopt_learning(self, previous: Engine) -> None:
        """Keep what ``previous`` (the engine this one replaces) learned, under this
        policy's learning settings."""
        if self.learner is not None and previous.learner is not None:
            previous.learner.configure(self.policy.learning)
            self.learner = previous.learner

    @staticmethod
    def _compile_checks(
        policy: Policy, available: Mapping[str, type[Check]]
    ) -> tuple[_CompiledCheck, ...]:
        compiled = []
        problems = []
        for check_id, cls in sorted(available.items()):
            settings = policy.checks.get(check_id, CheckSettings())
            if not settings.enabled or settings.mode == "off":
                continue
            try:
                check = cls(settings, policy)
            except (ValueError, TypeError) as exc:
                problems.append(f"checks.{check_id}.options: {exc}")
                continue
            cap = Mode.BLOCK if settings.mode == "inherit" else Mode(settings.mode)
            compiled.append(_CompiledCheck(check, cap, settings.threshold))
        if problems:
            raise PolicyError("<policy>", problems)
        return tuple(compiled)

    def transaction(self, request: Request) -> Transaction:
        """Open a transaction for ``request`` (its body may be given later)."""
        return Transaction(self, request)

    def inspect(self, request: Request) -> Transaction:
        """Run both request phases on a complete request, in one pass."""
        tx = Transaction(self, request)
        tx.request_body(request.body)
        return tx


def _strongest_first(candidate: tuple[InputValue, ValueCheck, Sequence[Hit]]) -> int:
    """Sort key: the candidate's best signature score, highest first."""
    best = 0
    for hit in candidate[2]:  # a plain loop: max() over a generator costs 1 k instructions
        best = max(best, hit.signature.score)
    return -best


class Transaction:
    """One request/response pair moving through the engine's phases."""

    # Set only when parameter kinds are in play (see _request_context).
    _endpoint_key: Endpoint | None = None  # the request's endpoint, for learning
    _observed = False  # learning observes this request
    _judged: dict[int, Judged] | None = None  # id(value) → its kind, for values judged shifted

    def __init__(self, engine: Engine, request: Request) -> None:
        self.engine = engine
        self.request = request
        self.response: Response | None = None
        self.started = engine.wall_clock()
        self.event_id = new_event_id(self.started)
        self.client_ip = engine.client_resolver.resolve(request.client, request.headers)
        self.decoded_path = decode_path(request.path)
        matched = engine.routes.match(request.method, self.decoded_path) if engine.routes else None
        if matched is None:
            self.route = ""
            self._endpoint = engine.default_endpoint
        else:
            self.route, self._endpoint = matched
        self._exclusions = (
            tuple(e for e in engine.exclusions if e.applies_to(request.method, self.decoded_path))
            if engine.exclusions
            else ()
        )
        self.findings: list[Finding] = []
        self.verdict: Verdict | None = None
        self._done: set[Phase] = set()
        self._inputs: Sequence[InputValue] = ()
        self._body_deferred = False  # body values not built yet: none is a candidate
        self._body = b""  # the request body with its content codings undone
        self._context = self._request_context() if engine.contextual else None
        self._engine_seconds = 0.0
        self._finished: SecurityEvent | None = None

    @property
    def upstream(self) -> str:
        """The name of the upstream the matched route forwards to (``default`` if none)."""
        return self._endpoint.upstream

    # -- the view checks see -------------------------------------------------------

    def inputs_for(self, check_id: str) -> Sequence[InputValue]:
        """The current phase's inputs that ``check_id`` may inspect."""
        if self._body_deferred:
            self._body_deferred = False
            self._inputs = [*self._inputs, *self._body_values()]
        if not self._exclusions:
            return self._inputs
        rules = [e for e in self._exclusions if e.check in ("*", check_id)]
        if not rules:
            return self._inputs
        return [v for v in self._inputs if not any(r.excludes(check_id, v.location) for r in rules)]

    # -- phases -------------------------------------------------------------------

    def request_headers(self) -> Verdict | None:
        """Phase 1: the request line and headers."""
        return self._phase((Phase.REQUEST_HEADERS,), self._extract_head)

    def request_body(self, body: bytes | None = None) -> Verdict | None:
        """Phase 2: the whole request body (``body`` replaces the request's, if given).

        When phase 1 has not run, both request phases run now as one pass.
        """
        if body is not None and body is not self.request.body:
            self.request = self.request.with_body(body)
        if Phase.REQUEST_HEADERS not in self._done:
            return self._phase(_REQUEST_PHASES, self._extract_request)
        return self._phase((Phase.REQUEST_BODY,), self._extract_body)

    def response_headers(self, response: Response) -> Verdict | None:
        """Phase 3: the upstream's status and headers."""
        self.response = response
        return self._phase((Phase.RESPONSE_HEADERS,), _no_inputs)

    def response_body(self, body: bytes) -> Verdict | None:
        """Phase 4: the whole upstream response body."""
        if self.response is not None:
            self.response = self.response.with_body(body)
        return self._phase((Phase.RESPONSE_BODY,), _no_inputs)

    def reject(self, check: str, status: int, message: str, location: Location) -> Verdict:
        """Record that the adapter refused the request itself (framing, size, timeout).

        Returns the ``REJECT`` verdict to answer with; the event records it like any
        rejection the engine makes. An earlier interruption stands and is returned.
        """
        if self.verdict is not None and self.verdict.interrupts:
            return self.verdict
        return self._reject(InputRejected(check, status, message, location))

    def finish(self, status: int | None = None, upstream_ms: float | None = None) -> SecurityEvent:
        """Phase 5, logging: the transaction's security event. Idempotent."""
        if self._finished is not None:
            return self._finished
        verdict = self.verdict
        if verdict is not None and verdict.interrupts:
            label = verdict.action.value
            final_status = verdict.status
        else:
            label = "monitor" if self.findings else "allow"
            final_status = (
                status
                if status is not None
                else (self.response.status if self.response is not None else 0)
            )
        self._finished = SecurityEvent(
            event_id=self.event_id,
            time=self.started,
            client_ip=self.client_ip,
            method=self.request.method,
            path=self.request.path,
            route=self.route,
            status=final_status,
            verdict=label,
            findings=list(self.findings),
            engine_ms=self._engine_seconds * 1000.0,
            upstream_ms=upstream_ms,
            reason=verdict.reason if verdict is not None else "",
        )
        return self._finished

    # -- internals ----------------------------------------------------------------

    def _phase(
        self, phases: tuple[Phase, ...], extract: Callable[[], Sequence[InputValue]]
    ) -> Verdict | None:
        """Run ``phases`` (consecutive, same direction) as one pass over ``extract()``."""
        if self.verdict is not None and self.verdict.interrupts:
            return self.verdict
        if phases[-1] in self._done:
            return None
        self._done.update(phases)
        mode = self._endpoint.request if phases[0] in _REQUEST_PHASES else self._endpoint.response
        if mode is Mode.OFF or phases[-1] in self.engine.idle_phases:
            return None
        start = self.engine.clock()
        try:
            return self._run_phase(phases, mode, extract)
        finally:
            self._engine_seconds += self.engine.clock() - start

    def _run_phase(
        self, phases: tuple[Phase, ...], mode: Mode, extract: Callable[[], Sequence[InputValue]]
    ) -> Verdict | None:
        try:
            self._inputs = extract()
        except InputRejected as rejected:
            return self._reject(rejected)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not take the request down
            self._inputs = ()
            return self._check_failed("input extraction", exc, mode)
        blocking: list[Finding] = []
        if phases[0] in _REQUEST_PHASES and self._inputs:
            failure = self._run_value_checks(mode, blocking)
            if failure is not None:
                return failure
        ran: set[str] = set()
        for phase in phases:
            for compiled in self.engine.checks_by_phase[phase]:
                if compiled.check.id in ran:
                    continue  # one pass over both request phases: the same inputs, once
                ran.add(compiled.check.id)
                try:
                    found = list(compiled.check.run(self, phase))
                except Exception as exc:  # noqa: BLE001 - one failing check is recorded
                    verdict = self._check_failed(compiled.check.id, exc, mode)
                    if verdict is not None:
                        return verdict
                    continue
                for finding in found:
                    self._record(compiled, finding, mode, blocking)
        if self._observed and not self.findings and phases[0] in _REQUEST_PHASES:
            self._observe()
        self._inputs = ()
        self._body_deferred = False
        if blocking:
            return self._block(blocking)
        return None

    def _request_context(self) -> RequestContext | None:
        """The kinds of this request's parameters, declared, then learned (learning
        counts the request and notes its endpoint)."""
        engine = self.engine
        request = self.request
        learner = engine.learner
        learned = None
        if learner is not None:
            self._observed = next(learner.sampling)
            if self._observed or learner.has_learned:
                host = request.headers.get("host") or ""
                key = learner.endpoint(host, request.method, self.route, self.decoded_path)
                self._endpoint_key = key
                learned = learner.learned_at(key)
        declared = (
            [d for d in engine.declarations if d.applies_to(request.method, self.decoded_path)]
            if engine.declarations
            else ()
        )
        if not declared and not learned:
            return None
        return RequestContext(declared, learned or {})

    def _observe(self) -> None:
        """Let learning see this request's values (it passed, with no finding); a body
        left unwalked (see :meth:`_extract_body`) is not walked for learning."""
        assert self.engine.learner is not None and self._endpoint_key is not None
        values = self._inputs
        if self._exclusions:
            values = [v for v in values if not self._excluded("*", v)]
        self.engine.learner.observe(self._endpoint_key, values, self.client_ip)

    def _run_value_checks(self, mode: Mode, blocking: list[Finding]) -> Verdict | None:
        """Every value check over every input, one signature scan for all of them.

        Candidates with the strongest signature hit are inspected first, and the
        first blocking finding ends the inspection: the verdict cannot change, and
        an attack request (the costly kind) is decided by its clearest evidence.
        In monitor mode nothing blocks, so every candidate is inspected.
        """
        compiled_checks = self.engine.value_checks
        candidates = sorted(self._value_candidates(), key=_strongest_first)
        for value, check, hits in candidates:
            if blocking:
                break
            if self._exclusions and self._excluded(check.id, value):
                continue
            try:
                finding = check.inspect(value, hits)
            except Exception as exc:  # noqa: BLE001 - one failing check is recorded, not fatal
                verdict = self._check_failed(check.id, exc, mode)
                if verdict is not None:
                    return verdict
                continue
            if finding is not None:
                judged = self._judged.get(id(value)) if self._judged is not None else None
                context = judged.describe() if judged is not None else ""
                self._record(compiled_checks[check.id], finding, mode, blocking, context)
        return None

    def _value_candidates(self) -> list[tuple[InputValue, ValueCheck, Sequence[Hit]]]:
        """The (value, check, hits) triples to inspect; values whose parameter kind
        asks for the other sensitivity go to the engine's shifted judges."""
        engine = self.engine
        scanner = engine.value_scanner
        context = self._context
        if context is None or engine.shift is None:
            return scanner.candidates(self._inputs)
        usual: list[InputValue] = []
        shifted: list[InputValue] = []
        self._judged = {}
        sensitivity = engine.policy.sensitivity
        for value in self._inputs:
            judged = context.of(value)
            if judged is not None and SENSITIVITY[judged.kind] != sensitivity:
                shifted.append(value)
                self._judged[id(value)] = judged
            else:
                usual.append(value)
        candidates = scanner.candidates(usual)
        if shifted:
            found = scanner.found_for([v.text for v in shifted])
            candidates += engine.shift.candidates(shifted, found)
        return candidates

    def _excluded(self, check_id: str, value: InputValue) -> bool:
        return any(e.excludes(check_id, value.location) for e in self._exclusions)

    def _record(
        self,
        compiled: _CompiledCheck,
        finding: Finding,
        mode: Mode,
        blocking: list[Finding],
        context: str = "",
    ) -> None:
        """Stamp ``finding`` with the mode in force for its check (and the kind its
        value was judged as) and keep it."""
        cap = compiled.mode_cap
        effective = mode if _MODE_RANK[cap] >= _MODE_RANK[mode] else cap
        stamped = finding.with_mode(effective, context)
        self.findings.append(stamped)
        if effective is Mode.BLOCK and finding.score >= compiled.threshold:
            blocking.append(stamped)

    def _extract_head(self) -> Sequence[InputValue]:
        return request_head_inputs(self.request, self.engine.limits)

    def _extract_request(self) -> Sequence[InputValue]:
        head = self._extract_head()
        body = self._extract_body()
        if not body:
            return head
        return [*head, *body]

    def _extract_body(self) -> Sequence[InputValue]:
        """The body's values; none yet for a plain JSON body in which no text is a
        candidate of any value check (built only if a check asks, see :meth:`inputs_for`)."""
        request = self.request
        if not request.body:
            return ()
        limits = self.engine.limits
        if len(request.body) > limits.max_body_bytes:
            raise InputRejected(
                "limits.body_size",
                limits.statuses.body,
                f"request body exceeds {limits.max_body_bytes} bytes",
                Location(Source.BODY),
            )
        self._body = decode_content(request.body, request.headers.get("content-encoding"), limits)
        texts = plain_json_texts(self._body, request.headers.get("content-type"), limits)
        learns = self._observed and len(self._body) <= LEARNING_BODY_BYTES
        if texts is not None and not learns and not self._has_candidates(texts):
            self._body_deferred = True
            return ()
        return self._body_values()

    def _has_candidates(self, texts: list[str]) -> bool:
        """True when some check, at either sensitivity this request may use, must
        inspect one of ``texts``."""
        engine = self.engine
        if engine.value_scanner.has_candidates(texts):
            return True
        return self._context is not None and engine.shift is not None and engine.shift.adds(texts)

    def _body_values(self) -> Sequence[InputValue]:
        """The values of the body as decoded by :meth:`_extract_body`."""
        content_type = self.request.headers.get("content-type")
        return body_inputs(self._body, content_type, self.engine.limits)

    def _block(self, blocking: list[Finding]) -> Verdict:
        policy = self.engine.policy.block_response
        checks = ", ".join(sorted({f.check for f in blocking}))
        self.verdict = Verdict(
            action=Action.BLOCK,
            status=policy.status,
            reason=f"blocked by {checks}",
            findings=tuple(blocking),
            event_id=self.event_id,
            headers=tuple(policy.headers.items()),
            body=problem_json(
                status=policy.status,
                title=policy.title,
                detail="The request was blocked by the API security policy.",
                event_id=self.event_id,
                type_=policy.type,
            ),
        )
        return self.verdict

    def _reject(self, rejected: InputRejected) -> Verdict:
        finding = Finding(
            check=rejected.check,
            category="protocol",
            location=rejected.location,
            message=rejected.message,
            score=100,
            severity=Severity.MEDIUM,
            owasp="API4:2023 Unrestricted Resource Consumption"
            if rejected.check.startswith("limits.")
            else None,
        )
        self.findings.append(finding)
        self.verdict = Verdict(
            action=Action.REJECT,
            status=rejected.status,
            reason=rejected.message,
            findings=(finding,),
            event_id=self.event_id,
            body=problem_json(
                status=rejected.status,
                title="Request rejected",
                detail=rejected.message,
                event_id=self.event_id,
            ),
        )
        return self.verdict

    def _check_failed(self, what: str, exc: Exception, mode: Mode) -> Verdict | None:
        finding = Finding(
            check=ERROR_CHECK_ID,
            category="error",
            location=Location(Source.PATH, self.request.path),
            message=f"{what} failed: {type(exc).__name__}: {exc}",
            score=100,
            severity=Severity.HIGH,
            mode=mode,
        )
        self.findings.append(finding)
        if self.engine.policy.on_error == "closed" and mode is Mode.BLOCK:
            return self._block([finding])
        return None
