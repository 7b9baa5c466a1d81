"""The planner's REST API for operators: status, decision history, overrides, SLA, pause,
resume and advisory mode. Authenticated and authorized on every call except /healthz."""


import logging
import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from scaler.control.audit import Audit
from scaler.control.auth import READ, WRITE, AuthError, Authorizer, Caller
from scaler.control.state import ControlState, Override, SLATargets, utcnow

log = logging.getLogger(__name__)

SERVICE_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"


class AdvisoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class ControlService:
    """The control state plus persistence and audit; every change is saved before it is used."""

    def __init__(self, state: ControlState, save: Callable[[ControlState], None] | None,
                 audit: Audit, status: Callable[[], dict], services: Callable[[], list[str]] | None = None) -> None:
        self.state, self._save, self.audit = state, save, audit
        self.status_provider, self.services = status, services
        self.lock = threading.RLock()

    def change(self, caller: Caller, action: str, detail: str, fn: Callable[[ControlState], None]) -> None:
        with self.lock:
            before = ControlState.from_persisted(self.state.to_persisted(), self.state.sla)
            fn(self.state)
            if self._save:
                try:
                    self._save(self.state)
                except Exception as exc:
                    # leave state untouched when it cannot be persisted
                    self.state.sla, self.state.paused = before.sla, before.paused
                    self.state.advisory, self.state.overrides = before.advisory, before.overrides
                    self.state.sla_request_generation = before.sla_request_generation
                    self.audit.record(caller.username, action, f"{detail}: not saved ({exc})", ok=False)
                    raise HTTPException(503, f"could not persist the change: {exc}") from exc
        self.audit.record(caller.username, action, detail)


def create_app(service: ControlService, authorizer: Authorizer) -> FastAPI:
    app = FastAPI(title="dynamo-scaling planner", version="v1",
                  description="Operator control of the predictive SLA planner.")
    bearer = HTTPBearer(auto_error=False)

    def caller_for(verb: str):
        def dep(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
            if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
                raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
            try:
                caller = authorizer.authenticate(creds.credentials)
                authorizer.authorize(caller, verb)
            except AuthError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
                raise HTTPException(exc.status, str(exc), headers=headers) from exc
            return caller
        return dep

    reader = Annotated[Caller, Depends(caller_for(READ))]
    writer = Annotated[Caller, Depends(caller_for(WRITE))]
    service_path = Annotated[str, Path(pattern=SERVICE_NAME, description="DGD service name")]

    def known(svc: str) -> None:
        names = service.services() if service.services else None
        if names is not None and svc not in names:
            raise HTTPException(404, f"service {svc!r} is not planned by this planner; known: {sorted(names)}")

    def snapshot() -> dict:
        st = service.state
        st.expire(utcnow())
        return {
            "paused": st.paused, "advisory": st.advisory, "sla": st.sla.model_dump(),
            "overrides": {k: v.model_dump(mode="json") for k, v in st.overrides.items()},
        }

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/v1/status", summary="forecast, targets, last decision, control state")
    def status(caller: reader) -> dict:
        with service.lock:
            return {**service.status_provider(), **snapshot()}

    @app.get("/v1/decisions", summary="decision history, newest first")
    def decisions(caller: reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
        with service.lock:
            items = list(service.state.history)[-limit:][::-1]
        return {"items": [d.as_dict() for d in items]}

    @app.put("/v1/overrides/{svc}", summary="pin or bound a service's replicas")
    def put_override(svc: service_path, body: Override, caller: writer) -> dict:
        known(svc)
        if body.expires_at is not None and body.expires_at <= utcnow():
            raise HTTPException(422, "expires_at is in the past")
        stored = body.model_copy(update={"set_by": caller.username, "set_at": utcnow()})
        service.change(caller, "OverrideSet", f"override on {svc}: {stored.model_dump(exclude_none=True, mode='json')}",
                       lambda st: st.overrides.__setitem__(svc, stored))
        return stored.model_dump(mode="json")

    @app.delete("/v1/overrides/{svc}", status_code=204, summary="remove a service's override")
    def delete_override(svc: service_path, caller: writer) -> Response:
        if svc not in service.state.overrides:
            raise HTTPException(404, f"no override on service {svc!r}")
        service.change(caller, "OverrideRemoved", f"override on {svc} removed",
                       lambda st: st.overrides.pop(svc, None))
        return Response(status_code=204)

    @app.put("/v1/sla", summary="set TTFT and ITL targets")
    def put_sla(body: SLATargets, caller: writer) -> dict:
        service.change(caller, "SLAChanged", f"SLA set to TTFT {body.ttft_ms} ms, ITL {body.itl_ms} ms",
                       lambda st: setattr(st, "sla", body))
        return body.model_dump()

    @app.post("/v1/pause", summary="stop writing replicas (decisions are still computed)")
    def pause(caller: writer) -> dict:
        service.change(caller, "Paused", "planner paused", lambda st: setattr(st, "paused", True))
        return snapshot()

    @app.post("/v1/resume", summary="resume writing replicas")
    def resume(caller: writer) -> dict:
        service.change(caller, "Resumed", "planner resumed", lambda st: setattr(st, "paused", False))
        return snapshot()

    @app.post("/v1/advisory", summary="turn advisory (recommend-only) mode on or off")
    def advisory(body: AdvisoryBody, caller: writer) -> dict:
        service.change(caller, "Advisory", f"advisory mode {'on' if body.enabled else 'off'}",
                       lambda st: setattr(st, "advisory", body.enabled))
        return snapshot()

    return app
