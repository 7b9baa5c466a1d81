"""`POST /v1/what-if` on the planner's API (in fleet mode `POST
/v1/deployments/{namespace}/{name}/what-if`, one per planned DGD): the proposed change (the
shapes of the SLA and override bodies) replayed on the deployment's last hour of traffic beside
the settings in effect. Authorized like reading the planner's decisions; one what-if at a time
per process (429 while one runs); 501 with the install command where the replay engine is not
installed; 409 while the planner has no profile to replay with (given no profile file, until its
online fit is trusted; then it replays with the fitted profile). The window ends at the last whole step (a multiple of `step_s` since the epoch), so
the answer's window end given to `dynamo-scaling what-if --end` rebuilds the same trace.

The planner service registers it with one call, handing over how to find its deployments;
each is read through the attributes of `scaler.service.deployment.DeploymentPlanner` (`cfg`,
`policy`, `control`, `pools`, `observer`), not imported, so this package stays below the service."""

# no `from __future__ import annotations`: FastAPI must see the route's Depends(reader) itself,
# and `reader` is local to register()
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from external_metrics.prom import PrometheusError
from scaler.control.api import authenticate_request
from scaler.control.auth import READ, Authorizer, Caller
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


def no_profile(deployment: Any) -> str | None:
    """Why the deployment has no profile to replay with, or None: a planner without a profile
    file sizes from its online fit, which it hands over only once trusted (the what-if then
    replays with the fitted profile, as the planner sizes with it)."""
    if deployment.policy.profile is not None:
        return None
    st = deployment.policy.fit_status
    return f"no performance profile yet: the online fit is not trusted ({st.windows if st else 0} windows)"


def window_end(now: float, step_s: float) -> float:
    """The last step boundary at or before `now`: two what-ifs within one step read the same window."""
    return math.floor(now / step_s) * step_s


def run_what_if(deployment: Any, proposal: Proposal, current: PlannerConfig, proposed: PlannerConfig,
                pools: Pools) -> dict:
    from scaler.whatif.answer import Source, what_if

    d = deployment.cfg.deployment
    source = Source(deployment.observer.prom.url, d.namespace, d.name, deployment.observer.mapping,
                    deployment.cfg.prometheus)
    window = Window(window_end(time.time(), proposal.step_s), proposal.window_s, proposal.step_s)
    profile = deployment.policy.profile  # read once: the fit replaces it each decision
    if profile is None:
        raise ProfileMissing(no_profile(deployment))
    return what_if(source, window, profile, current, proposed, pools, proposal.seed)


class ProfileMissing(RuntimeError):
    pass


# a DGD's namespace and name in the fleet route, checked as the fleet's other per-DGD routes check them
NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Lookup = Callable[[str, str], tuple[Authorizer, Any]]


def _reader(authorizer: Authorizer, creds: HTTPAuthorizationCredentials | None) -> Caller:
    return authenticate_request(authorizer, creds, READ)


async def _proposal(request: Request) -> Proposal:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise HTTPException(422, f"body: not valid JSON ({exc})") from None
    try:
        return Proposal.parse(data)
    except ProposalError as exc:
        raise HTTPException(422, str(exc)) from None


def register(app: FastAPI, authorizer: Authorizer, deployments: Callable[[], list],
             lookup: Lookup | None = None) -> None:
    """Add `POST /v1/what-if` to the planner's `app` for the one deployment `deployments()`
    holds; with `lookup` (fleet mode: namespace, name -> that DGD's authorizer and its deployment,
    None when not planned) also `POST /v1/deployments/{namespace}/{name}/what-if`."""
    busy = threading.Lock()  # one replay at a time per process, whichever route asks
    bearer = HTTPBearer(auto_error=False)

    async def answer(deployment: Any, proposal: Proposal, caller: Caller) -> dict:
        try:
            current, proposed, pools = plan(deployment, proposal)
        except ProposalError as exc:
            raise HTTPException(422, str(exc)) from None
        why = no_profile(deployment)
        if why:  # nothing to replay with yet; asking again once the fit is trusted answers
            raise HTTPException(409, why)
        from scaler.whatif.answer import replay_missing

        missing = await run_in_threadpool(replay_missing)
        if missing:
            raise HTTPException(501, missing)
        if not busy.acquire(blocking=False):
            raise HTTPException(429, "a what-if is already running; retry when it has finished",
                                headers={"Retry-After": "5"})
        try:
            return await run_in_threadpool(run_what_if, deployment, proposal, current, proposed, pools)
        except (NoTraffic, RebuildError) as exc:
            raise HTTPException(422, str(exc)) from None
        except ProfileMissing as exc:  # the fit lost its trust since the check above
            raise HTTPException(409, str(exc)) from None
        except PrometheusError as exc:
            raise HTTPException(503, f"Prometheus: {exc}") from None
        finally:
            busy.release()
            d = deployment.cfg.deployment
            log.info("what-if", extra={"caller": caller.username, "dgd": f"{d.namespace}/{d.name}"})

    def reader(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        return _reader(authorizer, creds)

    @app.post("/v1/what-if", summary="replay the last hour of traffic under a proposed SLA or override")
    async def what_if(request: Request, caller: Annotated[Caller, Depends(reader)]) -> dict:
        proposal = await _proposal(request)
        planned = deployments()
        if len(planned) != 1:
            raise HTTPException(404, f"the what-if answers for a planner of one deployment; this one plans "
                                     f"{len(planned)}")
        return await answer(planned[0], proposal, caller)

    if lookup is None:
        return

    @app.post("/v1/deployments/{namespace}/{name}/what-if",
              summary="replay a planned DGD's last hour of traffic under a proposed SLA or override")
    async def what_if_of(request: Request, namespace: Annotated[str, Path(pattern=NAME, max_length=63)],
                         name: Annotated[str, Path(pattern=NAME, max_length=253)],
                         creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
        guard, deployment = lookup(namespace, name)
        # authorized for this DGD before anything says whether it is planned, as the other per-DGD routes
        caller = await run_in_threadpool(_reader, guard, creds)
        proposal = await _proposal(request)
        if deployment is None:
            raise HTTPException(404, f"DynamoGraphDeployment {namespace}/{name} is not planned by this planner")
        return await answer(deployment, proposal, caller)
