"""`dynamo-scaling metrics-server`: the collector, the aggregated API on the TLS port, the
optional plain-HTTP port and the KEDA external scaler (gRPC), in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import ssl
import sys

import grpc
import uvicorn
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config as HypercornConfig
from uvicorn.protocols.http.h11_impl import H11Protocol

from external_metrics.api import create_app
from external_metrics.auth import Authenticator, RequestHeaderConfig, SubjectAccessReviewer, TokenReviewer
from external_metrics.cache import Cache
from external_metrics.collector import Collector
from external_metrics.keda_grpc import ExternalScaler
from external_metrics.metrics import ServerMetrics
from external_metrics.prom import AsyncPrometheusClient
from external_metrics.reader import Reader
from external_metrics.settings import Settings
from external_metrics.signals import SignalMapping
from external_metrics.tls import ServingCert

log = logging.getLogger(__name__)
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # we log the listeners ourselves


class _PeerCert:
    """Hands the verified client certificate of the TLS connection to the app as
    scope["extensions"]["tls"]["client_cert"] (None when the client sent none)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        der = ssl_object.getpeercert(binary_form=True) if cert else None
        inner = self.app

        async def app(scope, receive, send):
            scope.setdefault("extensions", {})["tls"] = {"client_cert": cert or None, "client_cert_der": der}
            await inner(scope, receive, send)

        self.app = app


try:  # the C parser when installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class PeerCertProtocol(_PeerCert, HttpToolsProtocol):
        pass
except ImportError:  # pragma: no cover
    class PeerCertProtocol(_PeerCert, H11Protocol):  # type: ignore[no-redef]
        pass


class _PeerCertApp:
    """Hypercorn's per-connection app: the connection's verified client certificate in every
    request's scope, as `_PeerCert` does for uvicorn."""

    def __init__(self, inner: ASGIWrapper, tls: dict) -> None:
        self.inner, self.tls = inner, tls

    async def __call__(self, scope, receive, send, sync_spawn, call_soon):
        scope.setdefault("extensions", {})["tls"] = self.tls
        await self.inner(scope, receive, send, sync_spawn, call_soon)


class _CoalescingWriter:
    """The connection's StreamWriter, with the writes of one event-loop turn sent as one.

    Hypercorn writes each HTTP/2 frame group as it makes it: a response's headers, its body and
    the end of its stream are three writes, each a TLS record and a send() of its own. Under the
    aggregator's concurrent streams that is most of a read's cost; here what one loop turn
    writes (every stream's frames) leaves in one record and one send(), a turn later at most.
    drain() still waits when the transport's buffer is full, so flow control is unchanged."""

    FLUSH_AT = 1 << 16  # bytes held before writing at once (a large body waits no turn)

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self.FLUSH_AT:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._size = 0
        if not self._writer.transport.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def write_eof(self) -> None:
        self._flush()
        self._writer.write_eof()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def __getattr__(self, name: str):  # get_extra_info, wait_closed, transport, ...
        return getattr(self._writer, name)


class TLSListener:
    """The TLS port, on hypercorn so that it speaks HTTP/2 to clients that offer it by ALPN.

    kube-apiserver's aggregation layer multiplexes every read onto one or a few HTTP/2
    connections to a backend that negotiates h2 (as Go servers do); over HTTP/1.1 it needs a
    connection per read in flight and closes those beyond its idle pool, so under concurrency
    the server spends its time in TLS handshakes. HTTP/1.1 callers (probes, curl) still work.
    The SSL context is ours, so certificate renewal and CA rotation apply as before."""

    def __init__(self, app, host: str, port: int, ssl_ctx: ssl.SSLContext) -> None:
        ssl_ctx.set_alpn_protocols(["h2", "http/1.1"])
        cfg = HypercornConfig()
        cfg.accesslog, cfg.errorlog = None, logging.getLogger("hypercorn.error")
        cfg.include_server_header = False
        cfg.keep_alive_timeout = 30  # as uvicorn had: outlive the aggregator's idle connections
        cfg.keep_alive_max_requests = 1 << 30  # never make the aggregator reconnect (a full TLS handshake)
        cfg.h2_max_concurrent_streams = 250  # the aggregator's streams share one connection
        self.config, self.host, self.port, self.ssl_ctx = cfg, host, port, ssl_ctx
        self.app = ASGIWrapper(app)
        self.context = WorkerContext(None)
        self.started = False
        self.should_exit = False
        self._connections: set[asyncio.Task] = set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)  # type: ignore[arg-type]
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            cert = ssl_object.getpeercert() if ssl_object is not None else None
            der = ssl_object.getpeercert(binary_form=True) if cert else None
            app = _PeerCertApp(self.app, {"client_cert": cert or None, "client_cert_der": der})
            await TCPServer(app, asyncio.get_running_loop(), self.config, self.context, {}, reader,
                            _CoalescingWriter(writer))  # type: ignore[arg-type]
        finally:
            self._connections.discard(task)  # type: ignore[arg-type]

    async def serve(self) -> None:
        server = await asyncio.start_server(self._connection, self.host, self.port, ssl=self.ssl_ctx,
                                            ssl_handshake_timeout=self.config.ssl_handshake_timeout)
        self.started = True
        try:
            while not self.should_exit:
                await asyncio.sleep(0.1)
        finally:
            server.close()
            await self.context.terminated.set()  # idle HTTP/2 connections send GOAWAY and close
            await asyncio.sleep(0)
            for t in list(self._connections):
                t.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()


class _Uvicorn(uvicorn.Server):
    """The process owns the signals, not each listener."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    @property
    def port(self) -> int:
        return self.config.port


def kube_client(settings: Settings):
    """An ApiClient from --kubeconfig, else in-cluster, else None (no cluster access)."""
    from dynamo_scaling.kube import optional_api_client

    return optional_api_client(str(settings.kubeconfig) if settings.kubeconfig else None)


def load_mapping(settings: Settings) -> SignalMapping:
    mapping = SignalMapping.load(settings.signals_file)
    if settings.window:
        mapping = SignalMapping.model_validate({**mapping.model_dump(), "window": settings.window})
    return mapping


class MetricsServer:
    SWITCH_INTERVAL_S = 0.0005
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mapping = load_mapping(settings)
        self.cache = Cache(list(self.mapping.signals), settings.staleness)
        self.metrics = ServerMetrics(self.cache)
        self.reader = Reader(self.mapping, self.cache)
        self.prom = AsyncPrometheusClient(settings.prometheus_url, settings.prometheus_timeout,
                                         connection=settings.prometheus_connection())
        self.collector = Collector(self.mapping, self.prom, self.cache, settings.interval, self.metrics)
        self.started = asyncio.Event()

    def ready(self) -> tuple[bool, str]:
        if self.collector.rounds == 0:
            return False, "no collection finished yet"
        stale = [s for s in self.cache.signals if not self.cache.fresh(s)]
        return True, "ok" if not stale else f"ok; unavailable: {', '.join(stale)}"

    def _requestheader(self, api_client) -> RequestHeaderConfig | None:
        """The front-proxy CA and names: from flags, else from the cluster. Raises on read errors."""
        s = self.settings
        if s.requestheader_client_ca_file:
            return RequestHeaderConfig.from_files(s.requestheader_client_ca_file, s.requestheader_allowed_names,
                                                  s.requestheader_username_headers, s.requestheader_group_headers,
                                                  s.requestheader_extra_headers_prefix)
        if api_client is not None:
            return RequestHeaderConfig.read_configmap(api_client)
        return None

    async def _refresh_requestheader(self, api_client, authn: Authenticator, ctx: ssl.SSLContext,
                                     stop: asyncio.Event) -> None:
        """Follow CA rotation: re-read the CA and names; a new CA is trusted by new handshakes,
        and a retired one is refused by the authenticator even where TLS still accepts it."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.settings.requestheader_refresh)
                return
            except asyncio.TimeoutError:
                pass
            try:
                new = await asyncio.to_thread(self._requestheader, api_client)
            except Exception as exc:  # keep serving with what we have
                log.warning("cannot re-read the requestheader CA", extra={"error": str(exc)[:300]})
                continue
            if new is None or new == authn.config:
                continue
            if authn.config is None or new.ca_pem != authn.config.ca_pem:
                ctx.load_verify_locations(cadata=new.ca_pem.decode())
                ctx.verify_mode = ssl.CERT_OPTIONAL
            authn.config = new
            log.info("requestheader CA or names changed; now in effect",
                     extra={"allowed_names": ",".join(new.allowed_names)})

    def _auth(self, api_client) -> tuple[Authenticator, SubjectAccessReviewer | None]:
        s = self.settings
        rh = None
        try:
            rh = self._requestheader(api_client)
        except Exception as exc:
            log.warning("cannot read the requestheader CA (kube-system/extension-apiserver-authentication "
                        "or the flags); every call on the TLS port is refused until it can be read",
                        extra={"error": str(exc)[:300]})
        if rh is None:
            log.warning("no requestheader CA: the TLS port answers 401 to everything but health checks")
        authorizer = None
        if s.authorization == "subjectaccessreview" or (s.authorization == "auto" and api_client is not None):
            if api_client is None:
                raise SystemExit("--authorization=subjectaccessreview needs cluster access (--kubeconfig or in-cluster)")
            authorizer = SubjectAccessReviewer(api_client)
        return Authenticator(rh), authorizer

    def _uvicorn(self, app, port: int, ssl_ctx: ssl.SSLContext | None) -> _Uvicorn:
        cfg = uvicorn.Config(app, host=self.settings.bind_address, port=port, log_config=None, access_log=False,
                             lifespan="off", http=PeerCertProtocol, ws="none", timeout_keep_alive=30,
                             server_header=False)
        cfg.load()
        cfg.ssl = ssl_ctx
        return _Uvicorn(cfg)

    def _grpc_credentials(self, client_ca: bytes | None) -> grpc.ServerCredentials:
        """TLS credentials that follow renewals of the serving certificate: gRPC asks before each
        new handshake, and gets the pair the reload task last found valid."""
        served = [""]

        def configuration():
            cert, key, fingerprint = self.cert.pair()
            served[0] = fingerprint
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)

        def fetch():
            return configuration() if self.cert.pair()[2] != served[0] else None  # None: keep the current one

        return grpc.dynamic_ssl_server_credentials(configuration(), fetch,
                                                   require_client_authentication=bool(client_ca))

    async def _grpc(self) -> grpc.aio.Server:
        s = self.settings
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((ExternalScaler(self.reader, self.metrics, s.interval).handler(),))
        addr = f"{s.bind_address}:{s.grpc_port}"
        if s.grpc_tls or s.grpc_client_ca_file:
            server.add_secure_port(addr, self._grpc_credentials(
                s.grpc_client_ca_file.read_bytes() if s.grpc_client_ca_file else None))
        else:
            server.add_insecure_port(addr)
        await server.start()
        return server

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self.cert = ServingCert(s.tls_cert_file, s.tls_private_key_file, s.tls_sans)
        api_client = kube_client(s) if s.secure_port else None
        servers: list[_Uvicorn | TLSListener] = []
        grpc_server = None
        tasks: list[asyncio.Task] = [asyncio.create_task(self.collector.run(stop), name="collector")]
        try:
            if s.secure_port:
                authn, authz = self._auth(api_client)
                # KEDA may also present a ServiceAccount token on /keda/, checked like any API read
                tokens = TokenReviewer(api_client) if authz is not None else None
                app = create_app(self.reader, self.metrics, interface="https", authenticator=authn,
                                 authorizer=authz, keda_token=s.token(), ready=self.ready, token_reviewer=tokens)
                ctx = self.cert.server_context(authn.config.ca_pem if authn.config else None)
                servers.append(TLSListener(app, s.bind_address, s.secure_port, ctx))
                tasks.append(asyncio.create_task(self._refresh_requestheader(api_client, authn, ctx, stop),
                                                 name="requestheader-refresh"))
            if s.http_port:
                app = create_app(self.reader, self.metrics, interface="http", keda_token=s.token(), ready=self.ready,
                                 serve_api=s.http_serves_api)
                servers.append(self._uvicorn(app, s.http_port, None))
            for srv in servers:
                tasks.append(asyncio.create_task(srv.serve(), name=f"listener:{srv.port}"))
            if s.grpc_port:
                grpc_server = await self._grpc()
            tls_in_use = s.secure_port or (s.grpc_port and (s.grpc_tls or s.grpc_client_ca_file))
            if tls_in_use and not self.cert.generated:  # follow renewals of the given files (cert-manager)
                tasks.append(asyncio.create_task(self.cert.follow(stop), name="serving-cert-reload"))
            while not all(srv.started for srv in servers):
                if any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.02)
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
            log.info("metrics server listening", extra={
                "bind": s.bind_address, "secure_port": s.secure_port, "http_port": s.http_port,
                "grpc_port": s.grpc_port, "prometheus": s.prometheus_url, "signals": len(self.mapping.signals),
                "self_signed": self.cert.generated})
            # what is alive now (modules, models, clients) lives as long as the process: keep it
            # out of the collector's way, or each full collection scans it again and stalls reads
            gc.freeze()
            # the collector's thread holds the GIL while it parses Prometheus' answers, and the
            # serving loop lets go of it on every TLS record and poll: at the default 5 ms switch
            # interval each of those could wait 5 ms for it during a collection
            sys.setswitchinterval(self.SWITCH_INTERVAL_S)
            self.started.set()
            stop_task = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
        finally:
            stop.set()
            for srv in servers:
                srv.should_exit = True
            if grpc_server is not None:
                await grpc_server.stop(grace=1.0)
            await asyncio.wait(tasks, timeout=5)
            for t in tasks:
                t.cancel()
            await self.collector.close()
            if api_client is not None:
                api_client.close()
            self.cert.close()
            log.info("metrics server stopped")
