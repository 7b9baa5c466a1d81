"""The planner's REST API for operators: status, decision history, overrides, SLA, pause,
resume and advisory mode. Authenticated and authorized on every call except /healthz.
Request bodies are capped before anything reads them, and the OpenAPI documents are off unless
asked for (then behind the same authentication as the API)."""


import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from scaler.control.audit import Audit
from scaler.control.auth import (
    API_GROUP,
    READ,
    RESOURCE,
    WRITE,
    AuthError,
    Authorizer,
    Caller,
)
from scaler.control.policy import PolicyConflict
from scaler.control.state import ControlState, Override, SLATargets, utcnow

log = logging.getLogger(__name__)

SERVICE_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
MAX_BODY_BYTES = 64 * 1024
# the RBAC verb on planners.scaling.dynamo-scaling.io that lets an override go past the
# planner's max_* and GPU budget (update alone keeps overrides within them)
OVERRIDE_LIMITS = "override-limits"


@dataclass(frozen=True)
class Limits:
    """The planner's own bounds: most replicas per service, and GPUs for all services together
    (one GPU per replica, as the planner counts them)."""

    max_replicas: dict[str, int] = field(default_factory=dict)
    gpu_budget: int | None = None
    min_replicas: dict[str, int] = field(default_factory=dict)

    def exceeded(self, svc: str, new: Override, overrides: dict[str, Override]) -> list[str]:
        """How setting `new` on `svc` would take the planner past its limits (empty: it would not)."""
        def floor(name: str, o: Override | None) -> int:
            if o is not None and o.replicas is not None:
                return o.replicas
            if o is not None and o.min_replicas is not None:
                return o.min_replicas
            return self.min_replicas.get(name, 0)

        out = []
        most = self.max_replicas.get(svc)
        if most is not None:
            # only what forces replicas up: a max_replicas above the planner's own max changes nothing
            for key in ("replicas", "min_replicas"):
                value = getattr(new, key)
                if value is not None and value > most:
                    out.append(f"{key} {value} is above the planner's maximum of {most} for {svc}")
        if self.gpu_budget is not None:
            names = set(self.min_replicas) | set(self.max_replicas) | set(overrides) | {svc}
            total = sum(floor(n, new if n == svc else overrides.get(n)) for n in names)
            if total > self.gpu_budget:
                out.append(f"the overrides hold {total} GPUs, above the planner's GPU budget of {self.gpu_budget}")
        return out


class BodyLimit:
    """ASGI middleware: refuses a request body larger than `limit` bytes with 413 before the app
    (authentication, JSON parsing) sees any of it. A declared Content-Length over the limit is
    refused at once; otherwise the bytes are counted as they arrive and the body is handed on
    only once it is complete and within the limit."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def _too_large(self, send) -> None:
        body = json.dumps({"error": f"request body larger than {self.limit} bytes", "status": 413}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    return await self._too_large(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._too_large(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class AdvisoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class NotPersisted(Exception):
    """A change could not be stored; the state is as it was before the change."""


class ControlService:
    """The control state plus persistence and audit; every change is saved before it is used.
    Refusals are domain errors (`PolicyConflict`, `NotPersisted`); the HTTP layer maps them."""

    def __init__(self, state: ControlState, save: Callable[[ControlState], None] | None,
                 audit: Audit, status: Callable[[], dict], services: Callable[[], list[str]] | None = None,
                 limits: Callable[[], Limits] | None = None,
                 save_change: Callable[[ControlState, ControlState, Caller], ControlState] | None = None) -> None:
        """`save` persists a whole state (the ConfigMap); `save_change` instead writes the change
        from the first state to the second on the caller's behalf and returns the state as
        stored (the DynamoScalingPolicy, which other writers share)."""
        self.state, self._save, self.audit = state, save, audit
        self._save_change = save_change
        self.status_provider, self.services, self.limits = status, services, limits
        self.lock = threading.RLock()

    def _adopt(self, src: ControlState) -> None:
        self.state.sla, self.state.paused = src.sla, src.paused
        self.state.advisory, self.state.overrides = src.advisory, src.overrides
        self.state.sla_request_generation = src.sla_request_generation

    def change(self, caller: Caller, action: str, detail: str, fn: Callable[[ControlState], None]) -> None:
        with self.lock:
            before = ControlState.from_persisted(self.state.to_persisted(), self.state.sla)
            fn(self.state)
            try:
                if self._save_change:
                    self._adopt(self._save_change(before, self.state, caller))
                elif self._save:
                    self._save(self.state)
            except PolicyConflict as exc:
                self._adopt(before)
                self.audit.record(caller.username, action, f"{detail}: refused ({exc})", ok=False)
                raise
            except Exception as exc:
                # leave state untouched when it cannot be persisted
                self._adopt(before)
                self.audit.record(caller.username, action, f"{detail}: not saved ({exc})", ok=False)
                raise NotPersisted(f"could not persist the change: {exc}") from exc
        self.audit.record(caller.username, action, detail)


@dataclass(frozen=True)
class Target:
    """What one request is about: the control service of a deployment (None when this process
    does not plan it) and the authorizer that guards it."""

    service: ControlService | None
    authorizer: Authorizer
    label: str = "this planner"


@dataclass(frozen=True)
class Call:
    caller: Caller
    service: ControlService
    authorizer: Authorizer


def authenticate_request(authorizer: Authorizer, creds: HTTPAuthorizationCredentials | None, verb: str) -> Caller:
    """The caller behind a bearer token, allowed `verb`; 401/403 as HTTP errors otherwise."""
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        caller = authorizer.authenticate(creds.credentials)
        authorizer.authorize(caller, verb)
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise HTTPException(exc.status, str(exc), headers=headers) from exc
    return caller


def _base_app(max_body_bytes: int) -> FastAPI:
    app = FastAPI(title="dynamo-scaling planner", version="v1",
                  description="Operator control of the predictive SLA planner.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(PolicyConflict)
    async def _conflict(request: Request, exc: PolicyConflict) -> JSONResponse:
        return JSONResponse({"error": str(exc), "status": 409}, 409)

    @app.exception_handler(NotPersisted)
    async def _not_persisted(request: Request, exc: NotPersisted) -> JSONResponse:
        return JSONResponse({"error": str(exc), "status": 503}, 503)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    return app


def create_app(service: ControlService, authorizer: Authorizer, api_docs: bool = False,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API of one deployment under /v1; `api_docs` serves /docs, /redoc and /openapi.json to
    callers who may read."""
    app = _base_app(max_body_bytes)
    add_control_routes(app, "/v1", lambda: Target(service, authorizer))
    bearer = HTTPBearer(auto_error=False)

    def reader(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        return authenticate_request(authorizer, creds, READ)

    if api_docs:
        @app.get("/openapi.json", include_in_schema=False)
        def openapi(caller: Annotated[Caller, Depends(reader)]) -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False)
        def docs(caller: Annotated[Caller, Depends(reader)]) -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

        @app.get("/redoc", include_in_schema=False)
        def redoc(caller: Annotated[Caller, Depends(reader)]) -> HTMLResponse:
            return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")

    return app


def create_fleet_app(target: Callable[..., Target], listing: Callable[[Caller | None], list[dict]],
                     authenticator: Authorizer, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Fleet mode: each deployment's API under /v1/deployments/{namespace}/{name}; `target` is a
    FastAPI dependency taking the path's namespace and name. The caller is authorized for that
    namespace and DGD before anything says whether it is planned, so an unauthorized caller
    learns nothing about which DGDs exist. GET /v1/deployments lists those the caller may read
    (`listing` filters by the per-deployment authorizers)."""
    app = _base_app(max_body_bytes)
    add_control_routes(app, "/v1/deployments/{namespace}/{name}", target)
    bearer = HTTPBearer(auto_error=False)

    @app.get("/v1/deployments", summary="the deployments this planner plans that the caller may read")
    def deployments(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            caller = authenticator.authenticate(creds.credentials)
        except AuthError as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        return {"items": listing(caller)}

    return app


def add_control_routes(app: FastAPI, prefix: str, target: Callable[..., Target]) -> None:
    """Status, decisions, overrides, SLA, pause/resume/advisory of one deployment under `prefix`;
    `target` (a FastAPI dependency) says which deployment and who guards it."""
    bearer = HTTPBearer(auto_error=False)

    def call_for(verb: str):
        def dep(t: Annotated[Target, Depends(target)],
                creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Call:
            caller = authenticate_request(t.authorizer, creds, verb)
            if t.service is None:
                raise HTTPException(404, f"{t.label} is not planned by this planner")
            return Call(caller, t.service, t.authorizer)
        return dep

    def within_limits(call: Call, svc: str, body: Override) -> None:
        """Past the planner's limits only with the override-limits verb (a second review, asked
        only then)."""
        service = call.service
        limits = service.limits() if service.limits else None
        over = limits.exceeded(svc, body, service.state.overrides) if limits else []
        if not over:
            return
        try:
            call.authorizer.authorize(call.caller, OVERRIDE_LIMITS)
        except AuthError as exc:
            if exc.status != 403:
                raise HTTPException(exc.status, str(exc)) from exc
            raise HTTPException(403, f"{'; '.join(over)}: going past the planner's limits needs the verb "
                                     f"{OVERRIDE_LIMITS!r} on {RESOURCE}.{API_GROUP} ({exc})") from exc

    reader = Annotated[Call, Depends(call_for(READ))]
    writer = Annotated[Call, Depends(call_for(WRITE))]
    service_path = Annotated[str, Path(pattern=SERVICE_NAME, description="DGD service name")]

    def known(service: ControlService, svc: str) -> None:
        names = service.services() if service.services else None
        if names is not None and svc not in names:
            raise HTTPException(404, f"service {svc!r} is not planned by this planner; known: {sorted(names)}")

    def snapshot(service: ControlService) -> dict:
        st = service.state
        st.expire(utcnow())
        return {
            "paused": st.paused, "advisory": st.advisory, "sla": st.sla.model_dump(),
            "overrides": {k: v.model_dump(mode="json") for k, v in st.overrides.items()},
        }

    @app.get(prefix + "/status", summary="forecast, targets, last decision, control state")
    def status(call: reader) -> dict:
        service = call.service
        with service.lock:
            return {**service.status_provider(), **snapshot(service)}

    @app.get(prefix + "/decisions", summary="decision history, newest first")
    def decisions(call: reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
        with call.service.lock:
            items = list(call.service.state.history)[-limit:][::-1]
        return {"items": [d.as_dict() for d in items]}

    @app.put(prefix + "/overrides/{svc}", summary="pin or bound a service's replicas")
    def put_override(svc: service_path, body: Override, call: writer) -> dict:
        known(call.service, svc)
        if body.expires_at is not None and body.expires_at <= utcnow():
            raise HTTPException(422, "expires_at is in the past")
        within_limits(call, svc, body)
        stored = body.model_copy(update={"set_by": call.caller.username, "set_at": utcnow()})
        call.service.change(call.caller, "OverrideSet",
                            f"override on {svc}: {stored.model_dump(exclude_none=True, mode='json')}",
                            lambda st: st.overrides.__setitem__(svc, stored))
        return stored.model_dump(mode="json")

    @app.delete(prefix + "/overrides/{svc}", status_code=204, summary="remove a service's override")
    def delete_override(svc: service_path, call: writer) -> Response:
        if svc not in call.service.state.overrides:
            raise HTTPException(404, f"no override on service {svc!r}")
        call.service.change(call.caller, "OverrideRemoved", f"override on {svc} removed",
                            lambda st: st.overrides.pop(svc, None))
        return Response(status_code=204)

    @app.put(prefix + "/sla", summary="set TTFT and ITL targets")
    def put_sla(body: SLATargets, call: writer) -> dict:
        call.service.change(call.caller, "SLAChanged", f"SLA set to TTFT {body.ttft_ms} ms, ITL {body.itl_ms} ms",
                            lambda st: setattr(st, "sla", body))
        return body.model_dump()

    @app.post(prefix + "/pause", summary="stop writing replicas (decisions are still computed)")
    def pause(call: writer) -> dict:
        call.service.change(call.caller, "Paused", "planner paused", lambda st: setattr(st, "paused", True))
        return snapshot(call.service)

    @app.post(prefix + "/resume", summary="resume writing replicas")
    def resume(call: writer) -> dict:
        call.service.change(call.caller, "Resumed", "planner resumed", lambda st: setattr(st, "paused", False))
        return snapshot(call.service)

    @app.post(prefix + "/advisory", summary="turn advisory (recommend-only) mode on or off")
    def advisory(body: AdvisoryBody, call: writer) -> dict:
        call.service.change(call.caller, "Advisory", f"advisory mode {'on' if body.enabled else 'off'}",
                            lambda st: setattr(st, "advisory", body.enabled))
        return snapshot(call.service)
