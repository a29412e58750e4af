"""The admission webhook: an aiohttp HTTPS server around :mod:`controller.webhook.review`.

``make_app(settings)`` builds the application (tests run it in-process on a real socket);
``serve(settings)`` runs it with TLS until SIGTERM/SIGINT, finishing in-flight reviews.
Certificate, key, policy and catalog files are watched and reloaded when they change. With
``policy_resource`` the policy comes from a ``DLCGuardPolicy`` resource instead, followed by a
watch (and its ``spec.catalog`` source, refreshed periodically); a rejected policy leaves the
last good one in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import ClientPayloadError, web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller import jsonio
from controller.kube.client import Rest
from controller.operator.catalogsource import CatalogSource, Fetched
from controller.policyfile import load_policy_file, with_mode
from controller.registry.resolver import DigestResolver
from controller.webhook.limits import Limits
from controller.webhook.listener import ConnectionGuard, GuardedSite
from controller.webhook.review import BadReview, Decision, DecisionCache, decide, for_mutation, response
from policy.catalog import Catalog, CatalogError, default_catalog, load_catalog_file
from policy.evaluate import Engine
from policy.exceptions import GuardException
from policy.policy import Policy, PolicyError, load_policy
from policy.workloads import BUILTIN_KINDS, DEFAULT_CUSTOM_KINDS

log = logging.getLogger("dlc_guard.webhook")
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
MAX_BODY = 3 * 1024 * 1024  # the API server sends at most ~3 MiB objects
ENGINE_CACHE = 16384
"""Verdicts kept by image string: ~1.1 KiB each at the longest reference, ~19 MiB in all."""


@dataclass(frozen=True)
class WebhookSettings:
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    mode: str | None = None
    policy_file: str | None = None
    catalog_file: str | None = None
    warn_days: int | None = None
    reload_seconds: float = 2.0
    max_body: int = MAX_BODY
    """One request body at most (413 beyond)."""
    namespace: str | None = None
    """The controller's own namespace: exempt by default."""
    as_of: dt.date | None = None
    """Fixed evaluation date (tests, reproducible runs); default today, UTC."""
    log_denies: bool = False
    """Log every deny and warn decision at INFO (the API server's audit log has them either way,
    through ``auditAnnotations``)."""
    watch_namespaces: bool = False
    """Watch namespaces through the API (kubeconfig or in-cluster) for namespaceSelector exemptions."""
    kubeconfig: str | None = None
    policy_resource: str | None = None
    """Follow this DLCGuardPolicy resource (instead of ``policy_file``)."""
    catalog_refresh_seconds: float = 3600.0
    """How often the policy's ``spec.catalog`` source is fetched again."""
    resolver: DigestResolver | None = None
    """Registry lookups for digest-only references (``None``: they stay ``unknown``)."""
    digest_budget: float = 1.0
    """The longest a review waits for a registry; later reviews use the answer."""
    digest_configmap: str | None = None
    """Read the operator's digest answers from this ConfigMap (in ``namespace``)."""
    watch_exceptions: bool = False
    """Follow the cluster's ``DLCGuardException`` resources (none apply until first listed)."""
    limits: Limits = field(default_factory=Limits)
    """Connection cap and timeouts (:mod:`controller.webhook.listener`)."""
    drain_seconds: float = 5.0
    """After SIGTERM: unready but still serving this long (endpoints move away), then stop."""
    shutdown_seconds: float = 20.0
    """After the drain: the longest in-flight reviews are waited for."""
    client_ca: str | None = None
    """Require a client certificate signed by this CA on /validate and /mutate (mTLS)."""
    tls_secret: str | None = None
    """Serve the certificate of this kubernetes.io/tls Secret (in ``namespace``), followed through
    the API: the controller's rotations are served within seconds, without a restart."""


class State:
    """What a review needs, swapped atomically when a watched file changes."""

    def __init__(self, settings: WebhookSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.catalog: Catalog | None = None
        self.policy: Policy | None = None
        self.engine: Engine | None = None
        self.mtimes: dict[str, float] = {}
        self.namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None
        self.policy_doc: Mapping[str, Any] | None = None
        """The followed resource as last delivered (``None``: absent, the defaults apply)."""
        self.source_catalog: Catalog | None = None
        """The catalog fetched from the policy's ``spec.catalog`` (``None``: file or embedded)."""
        self.catalog_source = CatalogSource(None)
        self.exceptions: tuple[GuardException, ...] = ()
        self.decisions = DecisionCache()
        self.metrics = Metrics(registry)
        if settings.resolver is not None:
            queued = Gauge("dlcguard_digest_lookups_queued", "Registry lookups waiting for a worker", registry=registry)
            queued.set_function(settings.resolver.queued)
        self.bad_log = RateLimit(10, 10.0)
        """At most 10 log lines about bad requests per 10 s; the rest are counted."""
        self.bodies = Budget(settings.limits.body_bytes)
        """Bytes of request bodies being read or judged, held from the first byte to the answer."""
        self.draining = False
        """SIGTERM received: /readyz fails so endpoints move away; reviews are still answered."""
        self.tls_pair = (settings.tls_cert or "", settings.tls_key or "")
        """The files of the pair being served (with a client CA change, it is loaded again)."""

    def today(self) -> dt.date:
        return self.settings.as_of or dt.datetime.now(dt.UTC).date()

    def load(self) -> None:
        s = self.settings
        catalog = self.source_catalog
        if catalog is None:
            catalog = default_catalog() if s.catalog_file is None else load_catalog_file(s.catalog_file)
        if s.policy_resource is not None:
            raw = with_mode(dict(self.policy_doc or {}), s.mode)
            policy = load_policy(raw, f"DLCGuardPolicy {s.policy_resource}", s.namespace)
        else:
            policy = load_policy_file(s.policy_file, s.namespace, s.mode)
        warn_days = s.warn_days if s.warn_days is not None else policy.warn_days
        self.catalog, self.policy = catalog, policy.with_exceptions(self.exceptions)
        self.metrics.kinds = frozenset(BUILTIN_KINDS) | frozenset(policy.custom_kinds)
        book = s.resolver.book if s.resolver is not None else None
        self.engine = Engine(catalog, self.today(), warn_days, policy.mirrors, cache_size=ENGINE_CACHE, digests=book)
        age = catalog.age_days(self.today())
        if age is not None:
            self.metrics.catalog_age.set(age)
        for path in (s.policy_file, s.catalog_file):
            if path:
                self.mtimes[path] = _mtime(path)

    def follow_policy(self, doc: Mapping[str, Any] | None, fetched: Fetched | None) -> None:
        """A new generation of the followed resource (on the event loop, from the watch thread)."""
        if fetched is not None and fetched.catalog is not None:
            self.source_catalog = fetched.catalog
        elif fetched is not None and fetched.error:
            self.metrics.reloads.labels("catalog", "error").inc()
            log.error("catalog source failed, keeping the last good catalog: %s", fetched.error)
        previous, self.policy_doc = self.policy_doc, doc
        generation = ((doc or {}).get("metadata") or {}).get("generation")
        try:
            self.load()
        except (PolicyError, CatalogError) as exc:
            self.metrics.reloads.labels("policy", "error").inc()
            self.policy_doc = previous
            if self.engine is None:  # nothing in force yet: the built-in defaults, never no answer
                self.policy_doc = None
                self.load()
            log.error("policy generation %s rejected, keeping the last good one: %s", generation, exc)
            return
        self.metrics.reloads.labels("policy", "ok").inc()
        if doc is None:
            log.info("policy resource %s absent: built-in defaults in force", self.settings.policy_resource)
        else:
            log.info(
                "policy generation %s in force",
                generation,
                extra={"mode": self.policy.defaults.mode if self.policy else None},
            )

    def set_exceptions(self, exceptions: tuple[GuardException, ...]) -> None:
        """A new set of DLCGuardExceptions (on the event loop): a new policy object, so the
        decision cache starts afresh."""
        if exceptions == self.exceptions:
            return
        self.exceptions = exceptions
        if self.policy is not None:
            self.policy = self.policy.with_exceptions(exceptions)
        log.info("%d DLCGuardExceptions in force", len(exceptions))

    def refresh_date(self) -> None:
        """A new day: re-create the engine so verdicts move with the calendar."""
        if self.engine is not None and self.engine.as_of != self.today():
            e = self.engine
            self.engine = Engine(
                e.catalog,
                self.today(),
                e.warn_days,
                e.mirrors,
                cache_size=ENGINE_CACHE,
                digests=e.digests,
                anaconda_notice=e.anaconda_notice,
            )

    def changed(self) -> bool:
        return any(_mtime(p) != m for p, m in self.mtimes.items())


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


class Budget:
    """A count of bytes that may be held at once; ``take`` refuses what does not fit."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.total:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class RateLimit:
    """``allow()`` at most ``burst`` times per ``seconds``; what it refused is counted."""

    def __init__(self, burst: int, seconds: float) -> None:
        self.burst, self.seconds = burst, seconds
        self._window, self._used, self._suppressed = 0.0, 0, 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._window >= self.seconds:
            self._window, self._used = now, 0
        if self._used < self.burst:
            self._used += 1
            return True
        self._suppressed += 1
        return False

    def take_suppressed(self) -> int:
        n, self._suppressed = self._suppressed, 0
        return n


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "dlcguard_admission_requests_total",
            "Admission reviews answered",
            ["endpoint", "kind", "operation", "decision"],
            registry=registry,
        )
        self.latency = Histogram(
            "dlcguard_admission_duration_seconds",
            "Time to answer an admission review",
            ["endpoint", "kind", "operation", "decision"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        self.verdicts = Counter(
            "dlcguard_image_verdicts_total", "Verdicts given to container images", ["verdict"], registry=registry
        )
        self.bad = Counter(
            "dlcguard_admission_bad_requests_total",
            "Requests refused before review (bad or slow bodies, no client certificate)",
            registry=registry,
        )
        self.shed = Counter(
            "dlcguard_admission_shed_total", "Reviews answered 503: every connection busy", registry=registry
        )
        self.connections = Gauge("dlcguard_connections_open", "Open client connections", registry=registry)
        self.closes = Counter(
            "dlcguard_connections_closed_total",
            "Connections closed by the webhook: evicted at the cap, shed, slow or idle",
            ["reason"],
            registry=registry,
        )
        self.catalog_age = Gauge("dlcguard_catalog_age_days", "Days since the catalog's source date", registry=registry)
        self.reloads = Counter(
            "dlcguard_reloads_total", "Reloads of watched files", ["what", "result"], registry=registry
        )
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self.kinds: frozenset[str] = frozenset(BUILTIN_KINDS) | frozenset(DEFAULT_CUSTOM_KINDS)
        """Kinds counted by name (the built-in ones and the policy's custom kinds)."""
        self._verdicts: dict[str, Any] = {}

    def observe(self, endpoint: str, kind: str, operation: str, d: Decision, seconds: float) -> None:
        """Count one review; labelled children are looked up once and kept (``labels()`` is slow).
        Label values come from known sets only (anything else is ``other``): the body is the
        caller's, and a label per unique value would let any caller grow /metrics without end."""
        if kind not in self.kinds:
            kind = "other"
        if operation not in OPERATIONS:
            operation = "other"
        key = (endpoint, kind, operation, d.decision)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        pair[0].inc()
        pair[1].observe(seconds)
        for f in d.findings:
            child = self._verdicts.get(f.result.verdict)
            if child is None:
                child = self._verdicts[f.result.verdict] = self.verdicts.labels(f.result.verdict)
            child.inc()


STATE = web.AppKey("state", State)
GUARD_KEY = web.AppKey("guard", ConnectionGuard)


class SlowBody(Exception):
    """The body did not arrive within the limit."""


async def _read_json(request: web.Request) -> Any:
    if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
        raw = await request.read()
    else:
        try:
            async with asyncio.timeout(request.app[STATE].settings.limits.body_seconds):
                raw = await request.read()
        except TimeoutError:
            raise SlowBody from None
    try:
        return jsonio.loads(raw)
    except jsonio.JSONDecodeError as exc:
        raise BadReview(f"body is not JSON: {exc}") from exc


async def _review(request: web.Request, mutate: bool) -> web.Response:
    state = request.app[STATE]
    started = time.perf_counter()
    endpoint = "mutate" if mutate else "validate"
    if state.engine is None or state.policy is None:
        return web.json_response({"error": "not ready"}, status=503)
    try:
        body = await _read_json(request)
        d = decide(body, state.engine, state.policy, state.today(), state.namespace_labels, state.decisions)
        resolver = state.settings.resolver
        # a digest-only DLC image: ask its registry, within the budget, then judge again
        if (
            resolver is not None
            and d.pending_images
            and await resolver.resolve_within(state.engine, d.pending_images, state.settings.digest_budget)
        ):
            d = decide(body, state.engine, state.policy, state.today(), state.namespace_labels, state.decisions)
        if mutate:
            # the mutating endpoint never denies: it records verdicts as annotations, on a copy
            # (the decision may be the cached one /validate answers with)
            d = for_mutation(body, d)
        doc = response(d)
    except BadReview as exc:
        message = str(exc)[:300]
        _refused(state, "bad admission request", error=message)
        return web.json_response({"error": message}, status=400)
    req = body["request"]
    kind = str((req.get("kind") or {}).get("kind", "")) if isinstance(req.get("kind"), dict) else ""
    op = str(req.get("operation", ""))
    state.metrics.observe(endpoint, kind, op, d, time.perf_counter() - started)
    if d.decision in ("deny", "warn") and (state.settings.log_denies or log.isEnabledFor(logging.DEBUG)):
        log.log(
            logging.INFO if state.settings.log_denies else logging.DEBUG,
            "admission %s",
            d.decision,
            extra={
                "uid": d.uid,
                "kind": kind,
                "namespace": req.get("namespace"),
                "object": req.get("name"),
                "worst": d.worst,
                "dryRun": bool(req.get("dryRun")),
            },
        )
    return web.Response(body=jsonio.dumps(doc), content_type="application/json")


async def _guarded(request: web.Request, mutate: bool) -> web.Response:
    # a try block rather than a middleware: middlewares cost every request a few wrappers
    state = request.app[STATE]
    guard = request.app.get(GUARD_KEY)
    slot = guard.slot_of(request) if guard is not None else None
    if slot is not None and slot.shed:
        # admitted over the connection cap while every other connection was busy: shed
        state.metrics.shed.inc()
        return web.Response(status=503, text="overloaded", headers={"Connection": "close", "Retry-After": "1"})
    if state.settings.client_ca and not _client_certified(request):
        _refused(state, "review without a client certificate refused")
        return web.json_response({"error": "a client certificate is required"}, status=403)
    length = request.content_length
    if length is None:  # the API server always says how long its body is
        return web.json_response({"error": "Content-Length is required"}, status=411)
    if length > state.settings.max_body:
        raise web.HTTPRequestEntityTooLarge(max_size=state.settings.max_body, actual_size=length)
    if not state.bodies.take(length):
        # bodies being read or judged already hold the budget: shed rather than grow
        state.metrics.shed.inc()
        return web.Response(status=503, text="overloaded", headers={"Retry-After": "1"})
    if guard is not None:
        guard.busy(slot, True)
    try:
        return await _review(request, mutate)
    except web.HTTPException:
        raise
    except SlowBody:
        _refused(state, "body not received in time")
        return web.Response(status=408, headers={"Connection": "close"})
    except (ConnectionError, ClientPayloadError, asyncio.IncompleteReadError) as exc:
        # the caller went away mid-body: one short line (rate-limited), never a traceback
        _refused(state, "client went away mid-request", error=type(exc).__name__)
        return web.Response(status=400)
    except Exception:  # never a crash: log it, answer 500 with no detail
        log.exception("unexpected error")
        return web.json_response({"error": "internal error"}, status=500)
    finally:
        state.bodies.give(length)
        if guard is not None:
            guard.busy(slot, False)


def _refused(state: State, message: str, **extra: Any) -> None:
    """A request refused before review: counted always, logged in one line at most ten times per
    ten seconds (with how many were not), so that a flood of them cannot flood the log."""
    state.metrics.bad.inc()
    if state.bad_log.allow():
        log.info(message, extra={**extra, "suppressed": state.bad_log.take_suppressed()})


def _client_certified(request: web.Request) -> bool:
    """The TLS peer presented a certificate (the handshake verified it against the client CA)."""
    transport = request.transport
    return bool(transport is not None and transport.get_extra_info("peercert"))


async def validate(request: web.Request) -> web.Response:
    return await _guarded(request, mutate=False)


async def mutate(request: web.Request) -> web.Response:
    return await _guarded(request, mutate=True)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.engine is None:
        return web.Response(status=503, text="catalog or policy not loaded")
    if state.draining:
        return web.Response(status=503, text="shutting down")
    return web.Response(text="ready")


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[STATE].metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _watch(app: web.Application) -> None:
    state = app[STATE]
    s = state.settings
    guard = app.get(GUARD_KEY)
    cert_mtime = _cert_mtimes(s)
    follower = app.get(FOLLOW_KEY)
    last_refresh = time.monotonic()
    while True:
        await asyncio.sleep(s.reload_seconds)
        state.refresh_date()
        if follower is not None and time.monotonic() - last_refresh >= s.catalog_refresh_seconds:
            last_refresh = time.monotonic()
            fetched = await asyncio.to_thread(follower.refresh_catalog)
            if fetched.changed or fetched.error:
                state.follow_policy(state.policy_doc, fetched)
        if state.changed():
            try:
                state.load()
                state.metrics.reloads.labels("config", "ok").inc()
                log.info("reloaded policy and catalog")
            except (CatalogError, PolicyError, OSError) as exc:
                # keep serving with the last good configuration
                state.metrics.reloads.labels("config", "error").inc()
                for p in list(state.mtimes):
                    state.mtimes[p] = _mtime(p)
                log.error("reload failed, keeping the last good policy and catalog: %s", exc)
        if guard is not None and (now := _cert_mtimes(s)) != cert_mtime:
            cert_mtime = now
            cert, key = state.tls_pair
            _swap_certificate(state, guard, cert, key, "reloaded TLS certificate")


def _swap_certificate(state: State, guard: ConnectionGuard, cert: str, key: str, done: str) -> bool:
    """Serve a pair: a fresh context, swapped in only once the pair (and client CA) loaded and
    matched; loading into the live one would leave a new certificate beside the old key."""
    try:
        guard.ssl_context = make_ssl_context(cert, key, state.settings.client_ca)
    except (ssl.SSLError, OSError) as exc:
        state.metrics.reloads.labels("certificate", "error").inc()
        log.error("certificate reload failed, still serving the previous one: %s", exc)
        return False
    state.metrics.reloads.labels("certificate", "ok").inc()
    log.info(done)
    return True


def _serve_pair(app: web.Application, cert: str, key: str) -> None:
    """A new certificate from the followed Secret (on the loop): once served, the files of the
    pair it replaces go; refused, its own files go."""
    state = app[STATE]
    if _swap_certificate(state, app[GUARD_KEY], cert, key, "serving the TLS Secret's new certificate"):
        old, state.tls_pair = state.tls_pair, (cert, key)
        cert, key = old
    if (cert, key) != state.tls_pair:
        for path in (cert, key):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _cert_mtimes(s: WebhookSettings) -> tuple[float, ...]:
    """What the file watch follows: the pair's files, and the client CA (in Secret mode the
    Secret watch brings new pairs, so only the client CA)."""
    files = (s.client_ca,) if s.tls_secret else (s.tls_cert, s.tls_key, s.client_ca)
    return tuple(_mtime(p) for p in files if p)


async def _start_watch(app: web.Application) -> Any:
    task = asyncio.create_task(_watch(app))
    loop = asyncio.get_running_loop()
    follower = app.get(FOLLOW_KEY)
    if follower is not None:
        follower.start(loop)
    exceptions = None
    if app[STATE].settings.watch_exceptions:
        from controller.kube.exceptions import ExceptionWatch

        state = app[STATE]

        def deliver(found: tuple[GuardException, ...]) -> None:
            loop.call_soon_threadsafe(state.set_exceptions, found)

        exceptions = ExceptionWatch(deliver)
        exceptions.start(app[API_KEY])
    secret_watch = None
    settings = app[STATE].settings
    guard = app.get(GUARD_KEY)
    if settings.tls_secret and settings.namespace and guard is not None:
        from controller.kube.certkeeper import SecretWatch

        directory = os.path.dirname(settings.tls_cert or "") or None

        def deliver_pair(cert: str, key: str) -> None:
            loop.call_soon_threadsafe(_serve_pair, app, cert, key)

        secret_watch = SecretWatch(settings.namespace, settings.tls_secret, directory or "/tmp", deliver_pair)
        secret_watch.start(app[API_KEY])
    yield
    if secret_watch is not None:
        secret_watch.stop()
    task.cancel()
    if follower is not None:
        follower.stop()
    if exceptions is not None:
        exceptions.stop()


class PolicyFollower:
    """Glue between the watch thread and the event loop: the policy (and the catalog its
    ``spec.catalog`` names, fetched in the thread) are applied on the loop, never mid-review."""

    def __init__(self, state: State, api_client: Any) -> None:
        from controller.kube.policyresource import PolicyResource

        assert state.settings.policy_resource is not None
        self.state = state
        self.api_client = api_client
        self.rest = Rest(api_client)
        self.watch = PolicyResource(state.settings.policy_resource, self._deliver)
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watch.start(self.api_client)

    def stop(self) -> None:
        self.watch.stop()

    def _deliver(self, doc: Mapping[str, Any] | None) -> None:
        spec = (doc or {}).get("spec") or {}
        wanted = spec.get("catalog") if isinstance(spec, Mapping) else None
        fetched = None
        if (wanted or {}) != self.state.catalog_source.spec:
            source = CatalogSource(wanted if isinstance(wanted, Mapping) else None)
            fetched = source.fetch(self.rest)
            self.state.catalog_source = source
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.state.follow_policy, doc, fetched)

    def refresh_catalog(self) -> Fetched:
        return self.state.catalog_source.fetch(self.rest)


FOLLOW_KEY = web.AppKey("follow", PolicyFollower)
API_KEY = web.AppKey("api", object)


def make_ssl_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context; with ``client_ca``, a certificate the client presents must chain to it
    (optional at the TLS layer so that the kubelet's probes, which present none, still get
    /healthz and /readyz; the review endpoints refuse callers without one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def make_app(
    settings: WebhookSettings,
    registry: CollectorRegistry | None = None,
    namespace_labels: Callable[[str], Mapping[str, str] | None] | None = None,
    api_client: Any = None,
) -> web.Application:
    """The application; ``namespace_labels`` answers namespaceSelector exemptions (else unknown);
    ``api_client`` (a ``kubernetes.client.ApiClient``) is needed to follow a policy resource."""
    app = web.Application(client_max_size=settings.max_body)
    state = State(settings, registry or CollectorRegistry())
    state.namespace_labels = namespace_labels
    if settings.policy_resource is None:
        state.load()  # else: not ready until the resource has been listed once
    app[STATE] = state
    if settings.tls_cert and settings.tls_key:
        ctx = make_ssl_context(settings.tls_cert, settings.tls_key, settings.client_ca)
        closes = {r: state.metrics.closes.labels(r) for r in ("evicted", "shed", "slow", "idle")}
        guard = app[GUARD_KEY] = ConnectionGuard(settings.limits, ctx, lambda reason: closes[reason].inc())
        state.metrics.connections.set_function(lambda: len(guard.slots))
    if settings.policy_resource is not None or settings.watch_exceptions or settings.tls_secret:
        if api_client is None:
            raise ValueError("following a policy resource, exceptions or a TLS Secret needs a Kubernetes API client")
        app[API_KEY] = api_client
    if settings.policy_resource is not None:
        app[FOLLOW_KEY] = PolicyFollower(state, api_client)
    app.router.add_post("/validate", validate)
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_start_watch)
    return app


async def listen(app: web.Application) -> tuple[web.AppRunner, GuardedSite]:
    """Start ``app`` on its settings' host and port, TLS through its connection guard."""
    s = app[STATE].settings
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=s.limits.idle_seconds + 5,  # the guard reaps first; this is the backstop
        shutdown_timeout=s.shutdown_seconds,
    )
    await runner.setup()
    site = GuardedSite(runner, app[GUARD_KEY], s.host, s.port)
    await site.start()
    return runner, site


async def run_until_signalled(app: web.Application, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), then drain: unready at once, still answering
    for ``drain_seconds`` (the endpoints controller and the API server's routing need a few seconds
    to move away), then the listener closes and in-flight reviews get ``shutdown_seconds``."""
    import signal

    state = app[STATE]
    s = state.settings
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner, site = await listen(app)
    log.info("dlc-guard webhook listening on %s", site.name)
    await stop.wait()
    state.draining = True
    log.info("shutting down: unready, still serving for %.0f s", s.drain_seconds)
    await asyncio.sleep(s.drain_seconds)
    await runner.cleanup()
    log.info("stopped")


def first_pair(api: Any, namespace: str, name: str, directory: str, wait: float = 2.0) -> tuple[str, str]:
    """The TLS Secret's certificate and key, written to files; waits (logging) until the
    controller has written it."""
    from controller.kube.certkeeper import SecretWatch

    got: list[tuple[str, str]] = []
    watch = SecretWatch(namespace, name, directory, lambda cert, key: got.append((cert, key)))
    rest = Rest(api)
    while True:
        doc = rest.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", ok_missing=True)
        if doc is not None:
            watch.changed(doc)
            if got:
                return got[0]
        log.info("waiting for the TLS Secret %s/%s", namespace, name)
        time.sleep(wait)


def serve(settings: WebhookSettings) -> None:
    labels = None
    api = None
    needs_api = settings.watch_namespaces or settings.policy_resource or settings.digest_configmap
    if needs_api or settings.watch_exceptions or settings.tls_secret:
        from controller.kube.client import connect_api

        api = connect_api(settings.kubeconfig)
    if settings.tls_secret:
        if not settings.namespace:
            raise ValueError("--tls-secret needs --namespace (or $POD_NAMESPACE)")
        directory = tempfile.mkdtemp(prefix="dlc-guard-tls-")
        cert, key = first_pair(api, settings.namespace, settings.tls_secret, directory)
        settings = replace(settings, tls_cert=cert, tls_key=key)
    if not settings.tls_cert or not settings.tls_key:
        raise ValueError("--tls-cert and --tls-key (or --tls-secret) are required")
    if settings.watch_namespaces:
        from controller.kube.namespaces import NamespaceLabels

        labels = NamespaceLabels()
        labels.start(api)
    if settings.digest_configmap and settings.resolver is not None and settings.namespace:
        from controller.registry.share import SharedDigests

        SharedDigests(settings.namespace, settings.digest_configmap, settings.resolver.book).start(api)
    app = make_app(settings, namespace_labels=labels, api_client=api)
    # the catalog and its indexes are long-lived: keep them out of every garbage collection
    gc.collect()
    gc.freeze()
    asyncio.run(run_until_signalled(app))
