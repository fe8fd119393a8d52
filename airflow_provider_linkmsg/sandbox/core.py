"""
The sandbox server: one local HTTP process that speaks the four vendor contracts, the way moto speaks AWS.

The core here owns what is common: the threaded HTTP/1.1 server (keep-alive, so it is never the bottleneck
of a benchmark), routing by vendor prefix, the deterministic fault injection, per-vendor rate limits, the
counters and the admin API under ``/_sandbox``. Each vendor is a :class:`VendorApp` in its own module that
declares its routes, its slice of the synthetic world and its ground truth.

The admin API under ``/_sandbox`` (truth, stats, advance, faults, config) is :mod:`.admin`.

Admin input is checked before anything changes (400 with the reason), so a bad call never leaves the
sandbox answering 500. Malformed requests (a ``Content-Length`` that is not a small whole number, or given
twice, an HTTP/0.9 request line) are answered 400 and the connection closed; an idle or stalled connection is closed after :data:`IDLE_TIMEOUT` seconds.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.server import Handler

from airflow_provider_linkmsg.sandbox.admin import check_advance, configure, handle
from airflow_provider_linkmsg.sandbox.faults import FaultRule, WindowLimiter, corrupt

#: client-side limits written into the sandbox's connections
SANDBOX_CLIENT_LIMITS = {"requests_per_second": 500, "burst": 50, "max_in_flight": 16}

#: the largest request body the sandbox reads (bytes)
MAX_BODY = 16 * 1024 * 1024
#: seconds a connection may sit idle (or stall mid-request) before the sandbox closes it
IDLE_TIMEOUT = 60.0
#: the most seconds one ``advance`` may move the clock (ten years)
MAX_ADVANCE = 10 * 366 * 24 * 3600.0

#: the sandbox world starts at this instant (2026-01-01T00:00:00Z) so its data is the same on every run
EPOCH_START = 1767225600.0


# --------------------------------------------------------------------------------------------------------
# Requests, responses, routes
# --------------------------------------------------------------------------------------------------------
class Request:
    """One incoming request, as a vendor route handler sees it."""

    def __init__(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Any,
        body: bytes,
        raw_path: str = "",
    ):
        self.method = method
        self.path = path
        self.raw_path = raw_path or path  # before percent-decoding (URNs arrive encoded)
        self.query_lists = query
        self.headers = headers  # email.message.Message: case-insensitive .get()
        self.body = body
        self.params: dict[str, str] = {}
        self.route = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query_lists.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        """The JSON body; raises :class:`BadJson` when the body is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise BadJson(str(exc)) from None


class BadJson(Exception):
    """The request body is not valid JSON."""


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0  # seconds to hold the response (long polling)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


def on_loopback(url: str) -> bool:
    """
    Whether ``url`` names this machine (``localhost``, 127.0.0.0/8, ``::1``). The sandbox is offline: the
    webhooks it sends go only there, whatever URL a campaign or a registration names.
    """
    try:
        host = (urlsplit(url).hostname or "").lower()
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reply(status: int, body: Any = None, **headers: str) -> Response:
    """A JSON response."""
    return Response(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # e.g. "/conversations/{urn}/messages"
    handler: Callable[[Request], Response]

    @property
    def name(self) -> str:
        return f"{self.method} {self.pattern}"

    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")


# --------------------------------------------------------------------------------------------------------
# Vendors
# --------------------------------------------------------------------------------------------------------
class VendorApp:
    """
    One vendor's API in the sandbox. Subclasses set ``name`` and ``prefix`` and implement the methods.

    :param sandbox: the owning :class:`SandboxState` (clock, counters, seed, sizes, config).
    """

    name: str = ""
    prefix: str = ""

    def __init__(self, sandbox: SandboxState) -> None:
        self.sandbox = sandbox
        self.lock = threading.RLock()
        self.rng = random.Random(f"{sandbox.seed}:{self.name}")
        self.options: dict[str, Any] = dict(sandbox.sizes.get(self.name, {}))

    def routes(self) -> list[Route]:
        return []

    def truth(self) -> Any:
        """The ground truth a correct client must end up with (vendor-specific JSON)."""
        return {}

    def advance(self, body: Mapping[str, Any]) -> Any:
        """Time passed (``body["seconds"]``) and new data may arrive; return a summary."""
        return {}

    def connection(self, base_url: str) -> dict[str, Any]:
        """The Airflow connection (JSON form) that points this vendor's hook at the sandbox."""
        return {}

    def conn_id(self) -> str:
        return f"{self.name}_default"

    def client_key(self, request: Request) -> str | None:
        """The caller's API key, for per-key rate limits (``None``: the route is not rate limited)."""
        return None

    def rate_limited(self, retry_after: int) -> Response:
        """The vendor's own 429 answer."""
        return reply(429, {"error": "Too many requests"}, Retry_After=str(retry_after))

    def server_error(self) -> Response:
        """The vendor's own 5xx answer."""
        return reply(500, {"error": "Internal server error"})

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Apply ``PUT /_sandbox/config`` settings for this vendor."""
        self.options.update(settings)

    def spend(self, credits: float) -> None:
        self.sandbox.count("credits", self.name, credits)


# --------------------------------------------------------------------------------------------------------
# State shared by the vendors
# --------------------------------------------------------------------------------------------------------
class SandboxState:
    """Seed, sizes, clock, counters, faults and rate limits of one sandbox."""

    def __init__(self, seed: int = 0, sizes: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.seed = seed
        self.sizes = {k: dict(v) for k, v in (sizes or {}).items()}
        self.offset = 0.0
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.route_counts: dict[str, int] = defaultdict(int)
        self.fault_seed = seed
        self.faults: list[FaultRule] = []
        self.rate_limits: dict[str, WindowLimiter] = {}
        self.base_url = ""

    def now(self) -> float:
        """Sandbox time (epoch seconds): a fixed start plus what ``advance`` added."""
        return EPOCH_START + self.offset

    def elapsed(self) -> float:
        """Real seconds since start plus advanced seconds (drives async jobs)."""
        return time.monotonic() - self.started + self.offset

    def count(self, group: str, key: str, amount: float = 1) -> None:
        with self.lock:
            self.counters[group][key] += amount

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {group: dict(values) for group, values in self.counters.items()}

    def reset_stats(self) -> None:
        with self.lock:
            self.counters.clear()

    def corruptions(self, vendor: str, route: str, action: str | None) -> list[tuple[FaultRule, Any]]:
        """The corrupt rules that apply to this answer and their values (counted against ``after``/``times``)."""
        out = []
        with self.lock:
            for rule in self.faults:
                if rule.kind != "corrupt" or not rule.matches(vendor, route):
                    continue
                if not fnmatch.fnmatchcase(action or "", rule.action):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after or (rule.times is not None and rule.served >= rule.times):
                    continue
                rule.served += 1
                fresh = rule.fresh and isinstance(rule.value, str)
                out.append((rule, f"{rule.value}{rule.served}" if fresh else rule.value))
        return out

    def draw_fault(self, vendor: str, route: str) -> tuple[str | None, float, str]:
        """Decide the fault for this request: (kind or None, latency seconds, retry_after)."""
        with self.lock:
            n = self.route_counts[f"{vendor} {route}"]
            self.route_counts[f"{vendor} {route}"] = n + 1
            rules = [r for r in self.faults if r.kind is None and r.matches(vendor, route)]
            latency, kind, retry_after = 0.0, None, "1"
            for i, rule in enumerate(rules):
                rng = random.Random(f"{self.fault_seed}:{vendor}:{route}:{n}:{i}")
                if rule.latency_ms and rng.random() < rule.p_latency:
                    latency += rule.latency_ms / 1000
                rule.seen += 1
                if kind or rule.seen <= rule.after or (rule.times is not None and rule.served >= rule.times):
                    continue
                draw = rng.random()
                for name, p in (
                    ("429", rule.p_429),
                    ("5xx", rule.p_5xx),
                    ("reset", rule.p_reset),
                    ("truncate", rule.p_truncate),
                ):
                    if draw < p:
                        kind = name
                        rule.served += 1
                        retry_after = rule.retry_after
                        if name == "5xx":
                            kind = f"5xx:{rule.status_5xx}"
                        break
                    draw -= p
            return kind, latency, retry_after


class Sandbox:
    """
    The sandbox: a :class:`SandboxState`, the vendor apps and the HTTP server that serves them.

    Use it as a context manager (``with Sandbox(seed=1) as sb: ...``) or with :meth:`start`/:meth:`stop`.

    :param seed: seed of the synthetic world and of the fault draws.
    :param sizes: per-vendor options, e.g. ``{"connectsafely": {"accounts": 2, "conversations": 200}}``.
    :param host: interface to listen on (loopback by default).
    :param port: port to listen on; 0 picks a free one.
    :param vendors: which vendors to serve (all by default).
    """

    def __init__(
        self,
        seed: int = 0,
        sizes: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        vendors: Iterable[str] | None = None,
    ) -> None:
        from airflow_provider_linkmsg.sandbox import vendor_apps

        self.state = SandboxState(seed, sizes)
        self.apps: dict[str, VendorApp] = {}
        for cls in vendor_apps():
            if vendors is None or cls.name in vendors:
                self.apps[cls.name] = cls(self.state)
        self._routes = {
            name: [(route.regex(), route) for route in app.routes()] for name, app in self.apps.items()
        }
        self._host, self._port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        from airflow_provider_linkmsg.sandbox.server import Handler, Server

        self._server = Server((self._host, self._port), Handler)
        self._server.sandbox = self
        host, port = self._server.server_address[:2]
        self.state.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="linkmsg-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.state.base_url

    # ---- what clients need ------------------------------------------------------------------------------
    def connections(self) -> dict[str, dict[str, Any]]:
        """Airflow connections (JSON form) by conn id, one per vendor, pointing at this sandbox."""
        conns = {app.conn_id(): app.connection(self.base_url + app.prefix) for app in self.apps.values()}
        for conn in conns.values():
            # the sandbox is local: client-side limits mirror its own (off unless configured), not the vendor's
            for key, value in SANDBOX_CLIENT_LIMITS.items():
                conn.setdefault("extra", {}).setdefault(key, value)
        return conns

    def env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` environment values for :meth:`connections`."""
        return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in self.connections().items()}

    # Python-side twins of the admin API, for tests in the same process.
    def truth(self, vendor: str) -> Any:
        with self.apps[vendor].lock:
            return json.loads(json.dumps(self.apps[vendor].truth()))

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset_stats(self) -> None:
        self.state.reset_stats()

    def advance(self, **body: Any) -> dict[str, Any]:
        """Time passes and new data arrives; every vendor part is checked before anything changes."""
        seconds = check_advance(body, self.apps, MAX_ADVANCE)
        self.state.offset += seconds
        out = {}
        for name, app in self.apps.items():
            with app.lock:
                out[name] = app.advance(body.get(name, body))
        return out

    def set_faults(self, rules: Iterable[Mapping[str, Any] | FaultRule], seed: int | None = None) -> None:
        parsed = [r if isinstance(r, FaultRule) else FaultRule(**r) for r in rules]
        with self.state.lock:
            self.state.faults = parsed
            if seed is not None:
                self.state.fault_seed = seed

    def configure(self, body: Mapping[str, Any]) -> None:
        """Apply settings (:func:`.admin.configure`): all are checked first, so none applies half-way."""
        configure(self, body)

    # ---- dispatch ---------------------------------------------------------------------------------------
    def dispatch(self, request: Request, handler: Handler) -> Response | None:
        if request.path.startswith("/_sandbox/"):
            return self._admin(request)
        for app in self.apps.values():
            if request.path == app.prefix or request.path.startswith(app.prefix + "/"):
                return self._vendor(app, request, handler)
        return reply(404, {"error": f"no sandbox vendor serves {request.path}"})

    def _vendor(self, app: VendorApp, request: Request, handler: Handler) -> Response | None:
        sub = request.path[len(app.prefix) :] or "/"
        route = match = None
        for regex, candidate in self._routes[app.name]:
            if candidate.method == request.method and (match := regex.match(sub)):
                route = candidate
                break
        if route is None or match is None:
            self.state.count("calls", f"{app.name} {request.method} {sub} (unrouted)")
            return reply(404, {"error": f"Cannot {request.method} {sub}"})
        request.params = {k: unquote(v) for k, v in match.groupdict().items()}
        request.route = route.name
        state = self.state
        state.count("calls", f"{app.name} {route.name}")
        kind, latency, retry_after = state.draw_fault(app.name, route.name)
        if latency:
            time.sleep(latency)
        if kind == "reset":
            state.count("faults", f"{app.name} reset")
            handler.reset()
            return None
        if kind == "429":
            state.count("faults", f"{app.name} 429")
            try:
                seconds = max(0, int(float(retry_after)))
            except (ValueError, OverflowError):  # an HTTP-date, inf, nan: the header carries it verbatim
                seconds = 1
            response = app.rate_limited(seconds)
            response.headers["Retry-After"] = retry_after
            return response
        if kind and kind.startswith("5xx"):
            state.count("faults", f"{app.name} 5xx")
            response = app.server_error()
            response.status = int(kind.split(":")[1])
            return response
        limiter = state.rate_limits.get(app.name)
        key = app.client_key(request)
        if limiter is not None and key is not None and (wait := limiter.check(key)):
            state.count("rate_limited", app.name)
            return app.rate_limited(wait)
        with app.lock:
            response = route.handler(request)
        state.count("served", f"{app.name} {route.name} {response.status}")
        if state.faults and response.status < 400 and not isinstance(response.body, bytes):
            action = None
            if request.body:
                try:
                    parsed = request.json()
                    action = parsed.get("action") if isinstance(parsed, dict) else None
                except BadJson:
                    pass
            for rule, value in state.corruptions(app.name, route.name, action):
                state.count("faults", f"{app.name} corrupt")
                response = Response(
                    response.status,
                    corrupt(response.body, rule.field, value, delete=rule.delete),
                    response.headers,
                    response.hold,
                )
        if response.hold:
            time.sleep(response.hold)
        if kind == "truncate":
            state.count("faults", f"{app.name} truncate")
            handler.send(response, truncate=True)
            return None
        return response

    def _admin(self, request: Request) -> Response:
        return handle(self, request)
