"""`POST /v1/what-if` on the planner's API: the proposed change (the shapes of the SLA and
override bodies) replayed on the deployment's last hour of traffic beside the settings in effect.
Authorized like reading the planner's decisions; one what-if at a time (429 while one runs); 501
with the install command where the replay engine is not installed.

The planner service registers it with one call, handing over how to find its deployments;
each is read through the attributes of `scaler.service.deployment.DeploymentPlanner` (`cfg`,
`policy`, `control`, `pools`, `observer`), not imported, so this package stays below the service."""

# no `from __future__ import annotations`: FastAPI must see the route's Depends(reader) itself,
# and `reader` is local to register()
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from external_metrics.prom import PrometheusError
from scaler.control.auth import READ, AuthError, Authorizer, Caller
from scaler.control.state import utcnow
from scaler.planner.config import PlannerConfig
from scaler.whatif.compare import Pools, Proposal, ProposalError, settings
from scaler.whatif.observe import NoTraffic, Window
from scaler.whatif.rebuild import RebuildError

log = logging.getLogger(__name__)


def _state(deployment: Any):
    """A deployment's planner config, pools, SLA in effect and active overrides on its pools."""
    pools = Pools(deployment.pools.prefill, deployment.pools.decode)
    now = utcnow()
    with deployment.control.lock:
        state = deployment.control.state
        sla = state.sla
        active = {svc: o for svc, o in state.overrides.items() if o.active(now) and pools.role(svc)}
    return deployment.policy.config, pools, sla, active


def plan(deployment: Any, proposal: Proposal) -> tuple[PlannerConfig, PlannerConfig, Pools]:
    """The settings in effect (SLA, overrides as bounds) and the same with the proposal on top:
    its SLA replaces the SLA, its override on a pool replaces that pool's override."""
    base, pools, sla, active = _state(deployment)
    current = settings(base, pools, sla, active, where="current overrides")
    proposed = settings(base, pools, proposal.sla or sla, {**active, **proposal.overrides})
    return current, proposed, pools


def run_what_if(deployment: Any, proposal: Proposal, current: PlannerConfig, proposed: PlannerConfig,
                pools: Pools) -> dict:
    from scaler.whatif.answer import Source, what_if

    d = deployment.cfg.deployment
    source = Source(deployment.observer.prom.url, d.namespace, d.name, deployment.observer.mapping,
                    deployment.cfg.prometheus)
    window = Window(time.time(), proposal.window_s, proposal.step_s)
    return what_if(source, window, deployment.policy.profile, current, proposed, pools, proposal.seed)


def register(app: FastAPI, authorizer: Authorizer, deployments: Callable[[], list]) -> None:
    """Add `POST /v1/what-if` to the planner's `app` for the one deployment `deployments()` holds."""
    busy = threading.Lock()
    bearer = HTTPBearer(auto_error=False)

    def reader(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            caller = authorizer.authenticate(creds.credentials)
            authorizer.authorize(caller, READ)
        except AuthError as exc:
            raise HTTPException(exc.status, str(exc),
                                headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None) from exc
        return caller

    @app.post("/v1/what-if", summary="replay the last hour of traffic under a proposed SLA or override")
    async def what_if(request: Request, caller: Annotated[Caller, Depends(reader)]) -> dict:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise HTTPException(422, f"body: not valid JSON ({exc})") from None
        try:
            proposal = Proposal.parse(data)
        except ProposalError as exc:
            raise HTTPException(422, str(exc)) from None
        planned = deployments()
        if len(planned) != 1:
            raise HTTPException(404, f"the what-if answers for a planner of one deployment; this one plans "
                                     f"{len(planned)}")
        try:
            current, proposed, pools = plan(planned[0], proposal)
        except ProposalError as exc:
            raise HTTPException(422, str(exc)) from None
        from scaler.whatif.answer import replay_missing

        missing = await run_in_threadpool(replay_missing)
        if missing:
            raise HTTPException(501, missing)
        if not busy.acquire(blocking=False):
            raise HTTPException(429, "a what-if is already running; retry when it has finished",
                                headers={"Retry-After": "5"})
        try:
            return await run_in_threadpool(run_what_if, planned[0], proposal, current, proposed, pools)
        except (NoTraffic, RebuildError) as exc:
            raise HTTPException(422, str(exc)) from None
        except PrometheusError as exc:
            raise HTTPException(503, f"Prometheus: {exc}") from None
        finally:
            busy.release()
            log.info("what-if", extra={"caller": caller.username})
