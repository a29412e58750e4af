"""kopf wiring for :class:`controller.operator.core.Core`: watch, then write what it decides.

- every pod-bearing kind (and the policy's custom kinds) is watched with stateless event
  handlers: nothing of kopf's own bookkeeping is written onto workloads;
- annotations go on with a JSON merge patch, Events are created through the API (from handlers
  and from the background re-evaluation alike);
- each workload's report (PolicyReport and/or OpenReports Report) is written by one paced writer
  task (:mod:`controller.operator.reports`), by server-side apply, only when its results changed;
- the DLCGuardPolicy resource (cluster-scoped, ``dlcguard.io``) is validated on every change;
  its status says whether it was accepted and why not;
- a timer re-evaluates everything daily (and whenever the catalog or policy changes);
- the catalog is refreshed from its source, falling back to the last good one;
- under peering, the background work (report writes, re-evaluation) runs only in the replica kopf lets
  work: a standby reads the peering object and stays idle, forgetting what it knew.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from controller.kube.certkeeper import CertKeeper, KeeperSettings
from controller.kube.client import ClusterError, Rest, collection_path, connect_api
from controller.kube.exceptions import EXCEPTION_GROUP, EXCEPTION_PLURAL, EXCEPTION_VERSION
from controller.kube.policyresource import POLICY_GROUP, POLICY_PLURAL, POLICY_VERSION
from controller.operator.catalogsource import CatalogSource
from controller.operator.core import Change, Core
from controller.operator.customkinds import CustomKinds, KindResource, on_loop
from controller.operator.reports import ReportSettings, ReportWriter
from controller.operator.writes import WriteQueue
from controller.registry.resolver import DigestResolver, images_of
from controller.registry.share import publish
from policy.catalog import Catalog, default_catalog
from policy.evaluate import Engine
from policy.exceptions import ExceptionBook, GuardException
from policy.policy import Policy, PolicyError, load_policy
from policy.report import WorkloadRef
from policy.workloads import BUILTIN_RESOURCES

log = logging.getLogger("dlc_guard.operator")


@dataclass
class OperatorSettings:
    namespaces: list[str] = field(default_factory=list)
    """Empty: cluster-wide."""
    policy_name: str = "default"
    controller_namespace: str | None = None
    kubeconfig: str | None = None
    as_of: dt.date | None = None
    """Fixed evaluation date (tests); default today, UTC."""
    reevaluate_seconds: float = 24 * 3600
    flush_seconds: float = 2.0
    catalog_refresh_seconds: float = 3600
    peering: str | None = None
    metrics_port: int | None = 8080
    liveness_port: int | None = None
    peering_lifetime: int = 60
    resolver: DigestResolver | None = None
    """Registry lookups for digest-only references, run in the background."""
    digest_configmap: str | None = None
    """Publish digest answers here (in ``controller_namespace``) for the webhook."""
    cert_keeper: KeeperSettings | None = None
    """Keep the webhook's TLS Secret and caBundle (``None``: cert-manager or the chart does)."""
    cert_seconds: float = 30.0
    reports: ReportSettings = field(default_factory=ReportSettings)


class Runtime:
    """What the handlers share: the core, the API, the report writer, the metrics."""

    def __init__(self, settings: OperatorSettings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.rest = Rest(connect_api(settings.kubeconfig))
        self.catalog: Catalog = default_catalog()
        self.catalog_source = CatalogSource(None)
        policy = load_policy({}, "default policy", settings.controller_namespace)
        self.book = settings.resolver.book if settings.resolver is not None else None
        """Digest answers (``None`` without registry lookups)."""
        self.core = Core(self.engine_for(policy), policy, watched=frozenset())
        self.exception_book = ExceptionBook()
        self.custom: CustomKinds | None = None
        """Watches of the policy's custom kinds (started with the operator)."""
        self.digests_seen = self.book.version if self.book is not None else 0
        self.last_cert_check = -1e9
        self.catalog_due = False
        """The policy named a new catalog source: fetch it on the next background tick."""
        self.policy_generation: Any = None
        self.resources: dict[str, tuple[str, str, str]] = dict(BUILTIN_RESOURCES)
        reg = registry or CollectorRegistry()
        self.registry = reg
        self.catalog_age = Gauge("dlcguard_catalog_age_days", "Days since the catalog's source date", registry=reg)
        self.refresh_failures = Counter(
            "dlcguard_catalog_refresh_failures_total", "Catalog refreshes that failed", registry=reg
        )
        self.writes = Counter("dlcguard_operator_writes_total", "Writes to the API", ["what", "result"], registry=reg)
        self.workloads = Gauge("dlcguard_operator_workloads", "Workloads tracked", registry=reg)
        self.active_gauge = Gauge("dlcguard_operator_active", "1 when this replica is the working one", registry=reg)
        # equal priorities would pause every replica: draw from a wide range
        self.priority = random.SystemRandom().randint(1, 2**30)
        self.was_active = True
        self.host = socket.gethostname()
        self.reports = ReportWriter(
            self.rest, lambda: self.core.book, settings.reports, settings.namespaces, reg, lambda: self.was_active
        )
        self.queue = WriteQueue(
            self.reports.limiter,  # one pace for every write
            settings.reports.concurrency,
            lambda what, result: self.writes.labels(what, result).inc(),
        )
        self.policy_status: tuple[str, bool, str, str, Any] | None = None
        """The last status written (name, accepted, reason, message, generation)."""

    def today(self) -> dt.date:
        return self.settings.as_of or dt.datetime.now(dt.UTC).date()

    def engine_for(self, policy: Policy) -> Engine:
        return Engine(
            self.catalog,
            self.today(),
            policy.warn_days,
            policy.mirrors,
            digests=self.book,
            anaconda_notice=policy.anaconda_notice != "off",
        )

    def new_engine(self) -> Engine:
        return self.engine_for(self.core.policy)

    # -- watching ----------------------------------------------------------------------
    async def observe(self, type_: str, obj: dict[str, Any], resource: tuple[str, str, str]) -> None:
        """A watched workload was added, modified or deleted (kopf's watches and ours)."""
        kind = str(obj.get("kind") or "")
        self.resources.setdefault(kind, resource)
        meta = obj.get("metadata") or {}
        if type_ == "DELETED":
            self.forget(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            return
        change = self.core.observe(obj)
        resolver = self.settings.resolver
        if resolver is not None:
            # digest-pinned images: look them up in the background; answers re-judge everything
            resolver.start(self.core.engine, images_of([obj], self.core.policy))
        if change is not None:
            await self.carry_out(change)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        if self.core.forget(kind, namespace, name):
            self.reports.wake.set()

    async def custom_event(self, res: KindResource, type_: str, obj: dict[str, Any]) -> None:
        await self.observe(type_, obj, (res.group, res.version, res.plural))

    async def custom_synced(self, res: KindResource, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A (re)list of a custom kind: what is not in it any more was deleted meanwhile."""
        present = {(str((o.get("metadata") or {}).get("namespace") or ""), str(o["metadata"]["name"])) for o in items}
        for ns, kind, name in list(self.core.tracked):
            if kind == res.kind and (namespace is None or ns == namespace) and (ns, name) not in present:
                self.forget(kind, ns, name)
        for obj in items:
            await self.observe("ADDED", obj, (res.group, res.version, res.plural))
        if res.kind not in self.core.watched and self.core.watch_kinds(self.core.watched | {res.kind}):
            self.reports.wake.set()

    async def follow_custom_kinds(self) -> None:
        if self.custom is None:
            return
        _, stopped = await asyncio.to_thread(self.custom.follow, self.core.policy.custom_kinds)
        if stopped:
            self.core.watch_kinds(self.core.watched - set(stopped))
            for ns, kind, name in list(self.core.tracked):
                if kind in stopped:
                    self.forget(kind, ns, name)

    @property
    def exceptions(self) -> tuple[GuardException, ...]:
        return self.exception_book.exceptions

    async def set_exception(self, type_: str, body: dict[str, Any]) -> None:
        before = self.exceptions
        for why in self.exception_book.apply(type_, body):
            log.warning("exception rejected: %s", why)
        if self.exceptions != before:
            await self.reevaluate(f"{len(self.exceptions)} exceptions in force", self.core.policy)

    # -- writing -----------------------------------------------------------------------
    def path_of(self, ref: WorkloadRef) -> str | None:
        res = self.resources.get(ref.kind)
        if res is None:
            return None
        group, version, plural = res
        return f"{collection_path(group, version, plural, ref.namespace or None)}/{ref.name}"

    async def carry_out(self, change: Change) -> None:
        """Queue what ``change`` asks for: the handler returns at once, the writers write."""
        if change.report_changed:
            self.reports.wake.set()
        if change.annotations:
            path = self.path_of(change.ref)
            if path is not None:
                self.queue.annotate(path, change.annotations, partial(self.annotate, path))
        if change.event is not None:
            self.queue.event(change.ref.key, partial(self.post_event, change))

    def annotate(self, path: str, annotations: dict[str, str | None]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        self.rest.request("PATCH", path, patch, None, "application/merge-patch+json", True)

    def post_event(self, change: Change) -> None:
        assert change.event is not None
        ref = change.ref
        now = _timestamp()
        namespace = ref.namespace or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace or None,
                "uid": ref.uid or None,
            },
            "type": change.event.type,
            "reason": change.event.reason,
            "message": change.event.message[:1024],
            "source": {"component": "dlc-guard", "host": self.host},
            "reportingComponent": "dlc-guard.io/operator",
            "reportingInstance": self.host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.rest.request("POST", collection_path("", "v1", "events", namespace), body)

    async def active(self) -> bool:
        """Whether kopf lets this replica work: no live peer of a higher (or equal) priority."""
        s = self.settings
        if s.peering is None:
            return True
        if s.namespaces:
            path = f"{collection_path('kopf.dev', 'v1', 'kopfpeerings', s.namespaces[0])}/{s.peering}"
        else:
            path = f"{collection_path('kopf.dev', 'v1', 'clusterkopfpeerings')}/{s.peering}"
        try:
            doc = await asyncio.to_thread(self.rest.request, "GET", path)
        except ClusterError as exc:
            log.warning("cannot read the peering object, staying idle: %s", exc)
            return False
        return peering_allows(doc.get("status") or {}, self.priority, dt.datetime.now(dt.UTC))

    def flush_metrics(self) -> None:
        self.workloads.set(len(self.core.tracked))

    async def reevaluate(self, why: str, policy: Policy | None = None) -> None:
        if policy is not None:
            # first: the new engine takes its warning window and mirrors
            self.core.policy = policy.with_exceptions(self.exceptions)
        changes = self.core.reevaluate(self.new_engine())
        log.info("re-evaluated %d workloads (%s): %d changed", len(self.core.tracked), why, len(changes))
        for c in changes:
            await self.carry_out(c)
        age = self.catalog.age_days(self.today())
        if age is not None:
            self.catalog_age.set(age)

    # -- policy ------------------------------------------------------------------------
    async def policy_event(self, type_: str, body: dict[str, Any], name: str) -> None:
        """The DLCGuardPolicy changed: validate it, say so in its status, follow it."""
        generation = (body.get("metadata") or {}).get("generation")
        status = dict(body.get("status") or {})
        if type_ != "DELETED" and status.get("observedGeneration") == generation == self.policy_generation:
            return  # our own status write came back as an event: nothing new
        self.policy_generation = generation if type_ != "DELETED" else None
        if type_ == "DELETED":
            await self.reevaluate("policy deleted: defaults", load_policy({}, "default policy", self.controller_ns))
            await self.follow_custom_kinds()
            return
        try:
            policy = load_policy(body, f"DLCGuardPolicy {name}", self.controller_ns)
        except PolicyError as exc:
            await asyncio.to_thread(self.set_policy_status, name, False, "Invalid", "; ".join(exc.problems), generation)
            log.warning("policy %s rejected: %s", name, exc)
            return
        wanted = dict(body.get("spec") or {}).get("catalog")
        if (wanted or {}) != self.catalog_source.spec:
            # a new source is read now, as the webhook does, not at the next refresh (an hour)
            self.catalog_source = CatalogSource(wanted if isinstance(wanted, dict) else None)
            self.catalog_due = True
        message = "policy accepted"
        if policy.self_service:
            # say it where the admin looks: these exemptions are the workload owner's to take
            message += "; self-service exemptions (workload owners can grant these themselves): " + "; ".join(
                policy.self_service
            )
        await asyncio.to_thread(self.set_policy_status, name, True, "Valid", message, generation)
        await self.reevaluate("policy changed", policy)
        await self.follow_custom_kinds()

    @property
    def controller_ns(self) -> str | None:
        return self.settings.controller_namespace

    def restate_policy(self) -> None:
        """The report APIs changed: say so in the policy's status, when there is one (blocking:
        called from the writer's discovery thread)."""
        if self.policy_status is not None:
            try:
                self.set_policy_status(*self.policy_status)
            except ClusterError as exc:
                log.warning("cannot update the policy's status: %s", exc)

    def set_policy_status(self, name: str, accepted: bool, reason: str, message: str, generation: Any) -> None:
        """The policy's conditions: ``Accepted`` (and why not), ``Reporting`` (which report APIs)."""
        self.policy_status = (name, accepted, reason, message, generation)
        now = _timestamp()
        reporting, where = self.reports.describe()
        status = {
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True" if accepted else "False",
                    "reason": reason,
                    "message": message[:2000],
                    "lastTransitionTime": now,
                    "observedGeneration": generation,
                },
                {
                    "type": "Reporting",
                    "status": "True" if reporting else "False",
                    "reason": "ReportAPIServed" if reporting else "NoReportAPI",
                    "message": where,
                    "lastTransitionTime": now,
                    "observedGeneration": generation,
                },
            ],
        }
        path = f"{collection_path(POLICY_GROUP, POLICY_VERSION, POLICY_PLURAL)}/{name}/status"
        self.rest.request("PATCH", path, {"status": status}, None, "application/merge-patch+json", True)


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def peering_allows(status: dict[str, Any], priority: int, now: dt.datetime) -> bool:
    """kopf's rule, read from the peering object's status: a replica works while no other live
    peer has a priority as high as its own (its own entry has its own priority)."""
    for info in status.values():
        if not isinstance(info, dict):
            continue
        try:
            seen = dt.datetime.fromisoformat(str(info.get("lastseen")))
            lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
            other = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        if seen + lifetime > now and other > priority:
            return False
    return True


RUNTIME: Runtime | None = None


def _rt() -> Runtime:
    assert RUNTIME is not None, "operator runtime not started"
    return RUNTIME


def make_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # the same credentials as every other call of ours (kubeconfig or in-cluster)
        cfg = _rt().rest.api.configuration
        auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken") or ""
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else (auth or None)
        return kopf.ConnectionInfo(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            scheme="Bearer" if token else None,
            token=token,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        # kopf logs every handler call at info: a line per workload per event, 50,000 at a restart
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        settings.watching.server_timeout = 300
        # kopf gives every object a worker that lives idle_timeout after its last event, holding
        # that event's body: at first sight of 50,000 workloads all of them at once. Bounded
        # workers that leave soon keep the peak (and so the RSS) to a few hundred bodies; the
        # watch waits for a free worker instead of piling bodies up.
        settings.queueing.worker_limit = 256
        settings.queueing.idle_timeout = 0.5
        settings.watching.chunk_size = 500  # list in pages, not in one response of every object
        settings.persistence.finalizer = "dlcguard.io/unused"  # no finalizers: every handler is stateless
        settings.peering.lifetime = _rt().settings.peering_lifetime
        rt = _rt()
        loop = asyncio.get_running_loop()
        rt.custom = CustomKinds(
            rt.rest.api, rt.settings.namespaces, on_loop(loop, rt.custom_event), on_loop(loop, rt.custom_synced)
        )
        await rt.follow_custom_kinds()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if _rt().custom is not None:
            _rt().custom.stop()  # type: ignore[union-attr]

    async def on_workload(*, type: str, body: kopf.Body, resource: kopf.Resource, **_: Any) -> None:
        await _rt().observe(type, dict(body), (resource.group, resource.version, resource.plural))

    for group, version, plural in BUILTIN_RESOURCES.values():
        kopf.on.event(group, version, plural, registry=registry)(on_workload)

    @kopf.on.event(EXCEPTION_GROUP, EXCEPTION_VERSION, EXCEPTION_PLURAL, registry=registry)
    async def on_exception(*, type: str, body: kopf.Body, **_: Any) -> None:
        await _rt().set_exception(type, dict(body))

    @kopf.on.event(POLICY_GROUP, POLICY_VERSION, POLICY_PLURAL, registry=registry)
    async def on_policy(*, type: str, body: kopf.Body, name: str, **_: Any) -> None:
        if name == _rt().settings.policy_name:
            await _rt().policy_event(type, dict(body), name)

    return registry


async def background(rt: Runtime, stop: asyncio.Event) -> None:
    """Flush reports often; re-evaluate daily (or when the date turns); refresh the catalog."""
    last_day = rt.today()
    last_eval = asyncio.get_running_loop().time()
    last_refresh = -1e9
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rt.settings.flush_seconds)
        try:
            active = await rt.active()
            rt.active_gauge.set(1 if active else 0)
            if not active:
                if rt.was_active:
                    log.info("standing by: another replica works (peering %s)", rt.settings.peering)
                    # kopf lists everything again on resume (and so do the custom-kind watches)
                    rt.core = Core(rt.new_engine(), rt.core.policy, watched=frozenset())
                    if rt.custom is not None:
                        rt.custom.stop()
                    rt.queue.clear()  # the working replica writes what is due
                rt.was_active = False
                continue
            if not rt.was_active:
                await rt.follow_custom_kinds()  # resumed: list the custom kinds again
            rt.was_active = True
            last_day, last_eval, last_refresh = await _background_step(rt, last_day, last_eval, last_refresh)
        except Exception:  # never let the background loop die: log and try again on the next tick
            log.exception("background work failed")


async def _background_step(
    rt: Runtime, last_day: dt.date, last_eval: float, last_refresh: float
) -> tuple[dt.date, float, float]:
    now = asyncio.get_running_loop().time()
    if rt.catalog_due or now - last_refresh >= rt.settings.catalog_refresh_seconds:
        last_refresh, rt.catalog_due = now, False
        fresh = await asyncio.to_thread(rt.catalog_source.fetch, rt.rest)
        if fresh.catalog is not None and fresh.changed:
            rt.catalog = fresh.catalog
            await rt.reevaluate("catalog changed")
        elif fresh.error:
            rt.refresh_failures.inc()
            log.warning("catalog refresh failed, keeping the last good catalog: %s", fresh.error)
    book = rt.book
    if book is not None and book.version != rt.digests_seen:
        rt.digests_seen = book.version
        await rt.reevaluate("digests resolved")
        if rt.settings.digest_configmap and rt.settings.controller_namespace:
            try:
                await asyncio.to_thread(
                    publish, rt.rest, rt.settings.controller_namespace, rt.settings.digest_configmap, book
                )
            except ClusterError as exc:
                log.warning("cannot publish digest answers: %s", exc)
    keeper = rt.settings.cert_keeper
    if keeper is not None and now - rt.last_cert_check >= rt.settings.cert_seconds:
        rt.last_cert_check = now
        await asyncio.to_thread(CertKeeper(rt.rest, keeper).reconcile_safely)
    if rt.today() != last_day or now - last_eval >= rt.settings.reevaluate_seconds:
        last_day, last_eval = rt.today(), now
        await rt.reevaluate("scheduled")
    rt.flush_metrics()
    return last_day, last_eval, last_refresh


def run(settings: OperatorSettings) -> None:
    global RUNTIME
    RUNTIME = rt = Runtime(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=rt.registry)
    registry = make_registry(settings)
    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(background(rt, stop))
        writer = asyncio.create_task(rt.reports.run(stop))
        queue = asyncio.create_task(rt.queue.run(stop, lambda: rt.was_active))
        rt.reports.on_flavors = rt.restate_policy
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                standalone=settings.peering is None,
                peering_name=settings.peering,
                priority=rt.priority,
                liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz"
                if settings.liveness_port
                else None,
            )
        finally:
            stop.set()
            await task
            await writer
            await queue

    asyncio.run(main())
