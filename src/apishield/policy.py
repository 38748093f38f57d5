"""The policy: one declarative YAML file, validated eagerly and immutable once loaded.

Every option has a type, a default and a description. :func:`load_policy` reports
every problem at once, each with the dotted field path and the file line it is on.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from apishield.errors import PolicyError
from apishield.findings import Mode


def _yaml_off(value: Any) -> Any:
    """YAML 1.1 reads a bare ``off`` as ``false``: take it as the mode it was meant to be."""
    return "off" if value is False else value


ModeSetting = Annotated[Literal["off", "monitor", "block", "inherit"], BeforeValidator(_yaml_off)]
EngineMode = Annotated[Literal["off", "monitor", "block"], BeforeValidator(_yaml_off)]
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_TEMPLATE_PARAM = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.-]*\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"path template {path!r} must start with '/'")
    stripped = _TEMPLATE_PARAM.sub("", path)
    if "{" in stripped or "}" in stripped:
        raise ValueError(f"path template {path!r} has a malformed '{{name}}' parameter")
    return path


def _check_pattern(path: str) -> str:
    """A path template, optionally ending in '*' to match every path below it."""
    prefix = path.removesuffix("*")
    _check_template(prefix or "/")
    return path


def _check_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    upper = tuple(m.upper() for m in methods)
    unknown = sorted(set(upper) - HTTP_METHODS - {"*"})
    if unknown:
        raise ValueError(f"unknown HTTP method(s): {', '.join(unknown)}")
    return upper


class Upstream(_Model):
    """Where the proxy forwards allowed requests."""

    url: str = Field(description="Base URL of the upstream, e.g. http://127.0.0.1:8080")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection")
    read_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the response")
    pool_size: int = Field(256, ge=1, description="Keep-alive connections per worker")
    idle_timeout: float = Field(
        4.0,
        gt=0,
        description="Seconds an idle keep-alive connection may be reused; keep it below the "
        "upstream's own keep-alive timeout (Node.js: 5 s)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"upstream url {url!r} must be http:// or https:// with a host")
        return url.rstrip("/")


class Route(_Model):
    """An endpoint (methods + path template) with its own mode and upstream."""

    path: str = Field(description="Path template, e.g. /users/{id}; '*' suffix matches a prefix")
    methods: tuple[str, ...] = Field(("*",), description="Methods, or '*' for any")
    mode: ModeSetting = Field("inherit", description="Mode for this endpoint")
    upstream: str = Field("default", description="Name of the upstream to forward to")

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return _check_pattern(path)

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        return _check_methods(methods)


class _Scoped(_Model):
    """A policy entry that applies to some methods and path templates."""

    path: str = Field("*", description="Path template it applies to, '*' for any")
    methods: tuple[str, ...] = Field(("*",), description="Methods, or '*' for any")

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return path if path == "*" else _check_pattern(path)

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        return _check_methods(methods)


class Exclusion(_Scoped):
    """Disable one check (or all, with '*') for a method + path template + location."""

    check: str = Field(description="Check id, or '*' for every check")
    location: str = Field(
        "*",
        description="Where: '*' for any, a source ('query', 'header', 'json', ...) or "
        "'source:name' such as 'query:q', 'header:user-agent', 'json:/comment/text'",
    )


_DECLARABLE_SOURCES = (
    "query",
    "form",
    "json",
    "cookie",
    "multipart",
    "xml",
    "path_segment",
    "header",
)


class ParameterContext(_Scoped):
    """Declares what a parameter holds: identifiers (judged at ``strict``) or free text
    (judged at ``balanced``); see :mod:`apishield.context`."""

    kind: Literal["id", "text"] = Field(description="'id' for identifiers, 'text' for free text")
    location: str = Field(
        description="'source:name' such as 'query:user_id', 'json:/items/*/sku' (array "
        "indices written '*'), 'path_segment:1', or a source alone for all its parameters"
    )

    @field_validator("location")
    @classmethod
    def _location(cls, location: str) -> str:
        source = location.partition(":")[0]
        if source not in _DECLARABLE_SOURCES:
            raise ValueError(
                f"location {location!r} must start with one of: {', '.join(_DECLARABLE_SOURCES)}"
            )
        return location


class Learning(_Model):
    """Learning from passing traffic which parameters hold identifiers."""

    enabled: bool = Field(True, description="Learn parameter kinds from traffic")
    min_samples: int = Field(
        50, ge=1, description="Identifier-shaped values seen before a parameter counts as 'id'"
    )
    min_clients: int = Field(
        3, ge=1, le=16, description="Distinct client addresses those values must come from"
    )
    sample_every: int = Field(64, ge=1, description="Observe one request in this many")
    max_parameters: int = Field(
        10_000, ge=1, description="Parameters tracked per worker; beyond, new ones are not learned"
    )


class CheckSettings(_Model):
    """Per-check settings; detectors may read extra options from ``options``."""

    enabled: bool = Field(True, description="Run this check at all")
    mode: ModeSetting = Field("inherit", description="Mode for this check's findings")
    threshold: int = Field(50, ge=0, le=100, description="Minimum score that blocks")
    options: dict[str, Any] = Field(default_factory=dict, description="Check-specific options")


class LimitStatuses(_Model):
    """Statuses answered when a request breaks a limit."""

    body: int = Field(413, ge=400, le=499)
    headers: int = Field(431, ge=400, le=499)
    malformed: int = Field(400, ge=400, le=499)
    encoding: int = Field(
        415, ge=400, le=499, description="A request body content coding that cannot be undone"
    )


class Limits(_Model):
    """Size and shape limits applied before any check."""

    max_body_bytes: int = Field(1_048_576, ge=0, description="Largest request body accepted")
    max_response_inspect_bytes: int = Field(
        1_048_576, ge=0, description="Response bodies larger than this pass uninspected"
    )
    max_params: int = Field(4096, ge=1, description="Query + form + JSON leaf values, in total")
    max_depth: int = Field(32, ge=1, description="Nesting depth of JSON/XML bodies")
    max_headers: int = Field(100, ge=1, description="Number of request headers")
    max_header_bytes: int = Field(16_384, ge=256, description="Bytes of all request headers")
    max_url_bytes: int = Field(8_192, ge=64, description="Bytes of the request target")
    statuses: LimitStatuses = Field(default_factory=LimitStatuses)


class BlockResponse(_Model):
    """The answer a blocked request gets (application/problem+json, with an event id)."""

    status: int = Field(403, ge=400, le=599)
    title: str = Field("Request blocked", description="problem+json title")
    type: str = Field("about:blank", description="problem+json type URI")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra response headers")


class TLS(_Model):
    """TLS termination for the proxy."""

    cert: Path = Field(description="PEM certificate chain")
    key: Path = Field(description="PEM private key")


class Timeouts(_Model):
    """Client-side timeouts of the proxy, in seconds."""

    header_read: float = Field(10.0, gt=0, description="Time to receive the request head")
    body_read: float = Field(30.0, gt=0, description="Time to receive the request body")
    idle: float = Field(75.0, gt=0, description="Keep-alive idle time between requests")
    shutdown_grace: float = Field(30.0, ge=0, description="Time in-flight requests get on stop")


class Server(_Model):
    """The reverse proxy's listener."""

    listen: str = Field("127.0.0.1:8000", description="host:port to listen on")
    workers: int = Field(0, ge=0, description="Worker processes; 0 means one per core")
    tls: TLS | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        _, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen {listen!r} must be host:port")
        return listen


class Events(_Model):
    """Where security events go."""

    sinks: tuple[str, ...] = Field(
        ("sqlite:///apishield-events.db",),
        description="Sink URIs: sqlite:///path, file:///path.jsonl, stdout://",
    )
    record: Literal["all", "findings"] = Field(
        "findings",
        description="'findings' records transactions with findings or rejections; "
        "'all' records every transaction",
    )
    retention_days: float = Field(7.0, gt=0, description="Age after which stored events expire")


class DirectionModes(_Model):
    """Modes per direction; 'inherit' takes the engine-wide mode."""

    request: ModeSetting = "inherit"
    response: ModeSetting = "monitor"


class Policy(_Model):
    """The whole policy. Build with :func:`load_policy` or :func:`policy_from_dict`."""

    version: Literal[1] = 1
    mode: EngineMode = Field("block", description="Engine-wide mode")
    directions: DirectionModes = Field(default_factory=DirectionModes)
    sensitivity: Literal["balanced", "strict"] = Field(
        "balanced", description="Detection sensitivity"
    )
    upstreams: dict[str, Upstream] = Field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    checks: dict[str, CheckSettings] = Field(default_factory=dict)
    exclusions: tuple[Exclusion, ...] = ()
    parameters: tuple[ParameterContext, ...] = Field(
        (), description="Declared parameter kinds (identifier or free text)"
    )
    learning: Learning = Field(default_factory=Learning)
    limits: Limits = Field(default_factory=Limits)
    trusted_proxies: tuple[str, ...] = Field(
        (), description="CIDRs whose X-Forwarded-For/Forwarded headers are believed"
    )
    block_response: BlockResponse = Field(default_factory=BlockResponse)
    on_error: Literal["open", "closed"] = Field(
        "open",
        description="When a check raises: 'open' lets the request through, "
        "'closed' blocks it; the error is recorded either way",
    )
    server: Server = Field(default_factory=Server)
    events: Events = Field(default_factory=Events)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted proxy {cidr!r} is not an IP network") from exc
        return cidrs

    def engine_mode(self) -> Mode:
        """The engine-wide mode as an enum."""
        return Mode(self.mode)


def resolve_mode(setting: ModeSetting, parent: Mode) -> Mode:
    """``inherit`` takes ``parent``; anything else is itself, and ``off`` always wins."""
    if parent is Mode.OFF:
        return Mode.OFF
    return parent if setting == "inherit" else Mode(setting)


def policy_from_dict(data: dict[str, Any], *, source: str = "<policy>") -> Policy:
    """Validate a policy given as plain data; errors name the fields."""
    return _validate(data, None, source)


def _validate(data: dict[str, Any], root: yaml.Node | None, source: str) -> Policy:
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, [_describe(err, root) for err in exc.errors()]) from exc
    problems = [_describe({"loc": loc, "msg": msg}, root) for loc, msg in _dangling(policy)]
    if problems:
        raise PolicyError(source, problems)
    return policy


def _dangling(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """References to checks and upstreams that do not exist."""
    from apishield.checks import registered_checks  # noqa: PLC0415 - checks import policy

    known = set(registered_checks())
    listing = ", ".join(sorted(known))
    problems: list[tuple[tuple[str | int, ...], str]] = [
        (("checks", name), f"unknown check; known checks: {listing}")
        for name in policy.checks
        if name not in known
    ]
    problems += [
        (("exclusions", i, "check"), f"unknown check {e.check!r}; known checks: {listing}")
        for i, e in enumerate(policy.exclusions)
        if e.check != "*" and e.check not in known
    ]
    problems += [
        (("routes", i, "upstream"), f"unknown upstream {r.upstream!r}")
        for i, r in enumerate(policy.routes)
        if policy.upstreams and r.upstream not in policy.upstreams
    ]
    return problems


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate a policy file, reporting every error with its line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return parse_policy(text, source=source)


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse and validate policy YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(source, ["the top level must be a mapping of options"])
    return _validate(data, node, source)


def _describe(error: Any, root: yaml.Node | None) -> str:
    loc = tuple(error.get("loc", ()))
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    line = _line_of(root, loc) if root is not None else None
    where = f"line {line}: " if line else ""
    return f"{where}{dotted}: {message}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow ``loc`` through the YAML node tree; return the deepest line found (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if child is None:
                return line
            line = (key or child).start_mark.line + 1
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
