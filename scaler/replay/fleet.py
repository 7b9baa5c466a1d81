"""Several deployments replayed together against one GPU budget (scaler.planner.fleet).

Dynamo's replay engine simulates one deployment per call and drives the policy through a
blocking callback (`on_tick`), so the deployments run in lock-step: one engine per thread, each
with a `FleetMember` policy. At every decision time each member asks its own planner for a plan
and hands it to a shared `FleetCoordinator`, which waits until every deployment still replaying
has proposed for that instant, allocates the budget (`allocate`), admits what the GPUs still held
allow (`admit`: an increase waits until another deployment's draining workers are gone) and
hands each member its replica targets. The engines never run ahead of one another: each waits in
its callback until the round is decided, so the simulated clocks are the same at every decision.

The clocks line up because each deployment's requests are shifted so that its first request is
at time 0 (the engine starts its clock at the first request) and every member decides on the
same interval. A deployment whose replay has ended leaves the fleet and holds no GPUs from then
on. Workers take one GPU each here (the mocker's workers), so GPUs = workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from scaler.planner.fleet import (
    Allocation,
    DeploymentPlan,
    FleetError,
    Holding,
    admit,
    allocate,
)
from scaler.policy import Decision, Observation, Policy
from scaler.replay.engine import EngineConfig, ReplayRun, run
from scaler.replay.scoring import _billed
from dynamo_scaling.traces import Request

log = logging.getLogger(__name__)


def align(requests: list[Request]) -> tuple[list[Request], float]:
    """The requests shifted so the first arrives at 0, and the shift (s) to subtract from times."""
    if not requests:
        return [], 0.0
    first = min(r.timestamp_ms for r in requests)
    return [replace(r, timestamp_ms=r.timestamp_ms - first) for r in requests], first / 1000.0


@dataclass
class FleetDeployment:
    name: str
    requests: list[Request]  # aligned: the first at 0 (see `align`)
    policy: Policy  # proposes the deployment's plan; its own GPU budget should be unset
    priority: int = 0
    min_prefill: int = 1
    min_decode: int = 1
    initial: tuple[int, int] = (1, 1)  # what the deployment would like to start with


@dataclass(frozen=True)
class Round:
    """One fleet decision."""

    t_s: float
    wanted: dict[str, tuple[int, int]]
    granted: dict[str, tuple[int, int]]
    targets: dict[str, tuple[int, int]]
    held_gpus: dict[str, int]  # running + starting + draining when the round was decided
    limited: tuple[str, ...]
    minimums_over_budget: bool
    clock_skew_s: float  # spread of the members' clocks at this round (0 in lock-step)


class FleetCoordinator:
    """The shared allocator the members consult; thread-safe, one round at a time."""

    def __init__(self, budget: int, deployments: list[FleetDeployment], interval_s: float,
                 stickiness: float | None = None) -> None:
        self.budget, self.interval_s = budget, interval_s
        self.order = [d.name for d in deployments]
        self.stickiness = stickiness
        self.live = set(self.order)
        self.pending: dict[str, tuple[float, DeploymentPlan, Holding]] = {}
        self.targets: dict[str, tuple[int, int]] = {}
        self.last: Allocation | None = None
        self.round = 0
        self.rounds: list[Round] = []
        self.cond = threading.Condition()

    def submit(self, name: str, now_s: float, plan: DeploymentPlan, holding: Holding) -> tuple[int, int]:
        with self.cond:
            if name not in self.live:
                raise FleetError(f"deployment {name!r} is not part of the fleet (or has left it)")
            my_round = self.round
            self.pending[name] = (now_s, plan, holding)
            self._maybe_resolve()
            while self.round == my_round:
                self.cond.wait()
            return self.targets[name]

    def leave(self, name: str) -> None:
        with self.cond:
            self.live.discard(name)
            self.pending.pop(name, None)
            self._maybe_resolve()

    def _maybe_resolve(self) -> None:
        if not self.pending or not self.live <= set(self.pending):
            return
        names = [n for n in self.order if n in self.pending]
        plans = [self.pending[n][1] for n in names]
        held = {n: self.pending[n][2] for n in names}
        kwargs = {} if self.stickiness is None else {"stickiness": self.stickiness}
        alloc = allocate(plans, self.budget, previous=self.last, **kwargs)
        targets = admit(plans, alloc, held, self.budget)
        times = [self.pending[n][0] for n in names]
        self.rounds.append(Round(
            t_s=max(times), wanted={p.name: (p.wanted_prefill, p.wanted_decode) for p in plans},
            granted={n: (g.prefill, g.decode) for n, g in alloc.grants.items()}, targets=dict(targets),
            held_gpus={n: h.prefill + h.decode + h.prefill_draining + h.decode_draining for n, h in held.items()},
            limited=tuple(g.name for g in alloc.grants.values() if g.limited),
            minimums_over_budget=alloc.minimums_over_budget, clock_skew_s=max(times) - min(times)))
        self.last = alloc
        self.targets = targets
        self.pending = {}
        self.round += 1
        self.cond.notify_all()


@dataclass
class FleetMember:
    """A deployment's planner inside the fleet: proposes its plan, applies the fleet's targets."""

    deployment: FleetDeployment
    coordinator: FleetCoordinator

    @property
    def name(self) -> str:
        return self.deployment.policy.name

    @property
    def slo_probe_s(self) -> float | None:
        return getattr(self.deployment.policy, "slo_probe_s", None)

    def observe_prompts(self, lengths, reuse=None) -> None:
        feed = getattr(self.deployment.policy, "observe_prompts", None)
        if feed is not None:
            feed(lengths, reuse)

    def initial_tick_s(self) -> float:
        return self.coordinator.interval_s

    def decide(self, obs: Observation) -> Decision:
        d, dep = self.deployment.policy.decide(obs), self.deployment
        want_p = d.target_prefill if d.target_prefill is not None else obs.prefill.non_draining
        want_d = d.target_decode if d.target_decode is not None else obs.decode.non_draining
        plan = DeploymentPlan(dep.name, int(want_p), int(want_d), dep.min_prefill, dep.min_decode, dep.priority,
                              obs.gpus_per_prefill_worker, obs.gpus_per_decode_worker)
        holding = Holding(obs.prefill.non_draining, obs.decode.non_draining, obs.prefill.draining,
                          obs.decode.draining)
        tp, td = self.coordinator.submit(dep.name, obs.now_s, plan, holding)
        reason = d.reason + f"; fleet: wanted {plan.wanted_prefill}P+{plan.wanted_decode}D, now {tp}P+{td}D"
        details = replace(d.details, fleet_wanted_gpus=float(plan.wanted_gpus), fleet_target_gpus=float(tp + td))
        return Decision(tp, td, self.coordinator.interval_s, reason, details)


@dataclass
class FleetRun:
    budget: int
    runs: dict[str, ReplayRun]
    rounds: list[Round]
    initial: dict[str, tuple[int, int]]
    errors: dict[str, BaseException] = field(default_factory=dict)

    def gpu_steps(self) -> list[tuple[float, int]]:
        return fleet_gpu_steps(list(self.runs.values()))


def fleet_gpu_steps(runs: list[ReplayRun]) -> list[tuple[float, int]]:
    """(time s, GPUs billed by all the runs together from then on), from the engines' own
    lifecycle records: active + starting + draining workers, every change of every run."""
    events: list[tuple[float, int, int]] = []  # (time, run index, its GPUs from then on)
    for i, r in enumerate(runs):
        events += [(t, i, g) for t, g in _billed(r)]
        events.append((r.end_s, i, 0))  # a finished replay holds nothing
    events.sort(key=lambda e: e[0])
    now = [0] * len(runs)
    out: list[tuple[float, int]] = []
    k = 0
    while k < len(events):
        t = events[k][0]
        while k < len(events) and events[k][0] == t:  # every change at one instant, then the total
            now[events[k][1]] = events[k][2]
            k += 1
        out.append((t, sum(now)))
    return out


def run_fleet(deployments: list[FleetDeployment], budget: int, engine: EngineConfig, interval_s: float = 5.0,
              unloaded_ttft_ms: Callable[[float], float] | None = None,
              stickiness: float | None = None) -> FleetRun:
    """Replay `deployments` together against `budget` GPUs. `engine` gives start-up and SLA
    targets; each deployment's initial fleet is its `initial` wish cut to the budget by the same
    allocation rule. Raises if a deployment's replay failed."""
    if not deployments:
        raise FleetError("a fleet needs at least one deployment")
    for d in deployments:
        if d.requests and min(r.timestamp_ms for r in d.requests) != 0:
            raise FleetError(f"deployment {d.name!r}: requests must be aligned to start at 0 (see align())")
        if getattr(getattr(d.policy, "config", None), "gpu_budget", None) is not None:
            raise FleetError(f"deployment {d.name!r}: its planner has its own gpu_budget; the fleet's budget "
                             "applies instead, leave it unset")
    start = allocate([DeploymentPlan(d.name, d.initial[0], d.initial[1], d.min_prefill, d.min_decode, d.priority)
                      for d in deployments], budget)
    initial = {n: (g.prefill, g.decode) for n, g in start.grants.items()}
    coord = FleetCoordinator(budget, deployments, interval_s, stickiness)
    coord.last = start
    runs: dict[str, ReplayRun] = {}
    errors: dict[str, BaseException] = {}

    def replay(d: FleetDeployment) -> None:
        try:
            cfg = replace(engine, initial_prefill=initial[d.name][0], initial_decode=initial[d.name][1])
            runs[d.name] = run(d.requests, FleetMember(d, coord), cfg, unloaded_ttft_ms=unloaded_ttft_ms)
        except Exception as exc:  # noqa: BLE001  any failure is re-raised once every thread has finished
            errors[d.name] = exc
        finally:
            coord.leave(d.name)  # the others must not wait for a replay that has ended

    threads = [threading.Thread(target=replay, args=(d,), name=f"fleet-{d.name}") for d in deployments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        name, exc = next(iter(errors.items()))
        raise RuntimeError(f"fleet replay of {name!r} failed: {exc}") from exc
    for name, r in runs.items():
        r.policy = name
    return FleetRun(budget, {d.name: runs[d.name] for d in deployments}, coord.rounds, initial, errors)


# --- the benchmark comparison: one shared budget against a fixed split of it ---------------------

@dataclass(frozen=True)
class FleetSpec:
    """One deployment of a comparison: its aligned requests, priority and scored part."""

    name: str
    requests: list[Request]
    priority: int
    scored_from_s: float = 0.0  # requests before this (fleet time) are warm-up: played, not scored


def split_budget(weights: dict[str, float], budget: int, floor: int = 2) -> dict[str, int]:
    """Whole GPUs in proportion to `weights`, at least `floor` each, largest remainder first
    (ties to the first listed)."""
    names = list(weights)
    if floor * len(names) > budget:
        raise FleetError(f"budget {budget} cannot give {floor} GPUs to each of {len(names)} deployments")
    total = sum(max(0.0, w) for w in weights.values()) or float(len(names))
    spare = budget - floor * len(names)
    raw = {n: spare * (max(0.0, weights[n]) if total else 1.0) / total for n in names}
    out = {n: floor + int(raw[n]) for n in names}
    for n in sorted(names, key=lambda n: (-(raw[n] - int(raw[n])), names.index(n)))[:budget - sum(out.values())]:
        out[n] += 1
    return out


def _pools(peak: tuple[int, int], gpus: int) -> tuple[int, int]:
    """A fixed fleet of `gpus` GPUs divided between the pools as the planner's budget rule would."""
    from scaler.planner.constraints import fit_budget
    p, d, _ = fit_budget(max(1, peak[0]), max(1, peak[1]), gpus, min_prefill=1, min_decode=1)
    return p, d


def compare(specs: list[FleetSpec], budget: int, profile, startup_s: float = 60.0, ttft_ms: float = 500.0,
            itl_ms: float = 50.0, interval_s: float = 5.0, policy: str = "predictive",
            progress: Callable[[str], None] | None = None) -> dict:
    """The same deployments three ways on the same `budget` GPUs: `shared` (one budget, by
    priority, lock-step), `fixed` (a fixed fleet per deployment, the budget split in proportion to
    each one's mean need), `private` (each planner alone with its split as its own gpu_budget).
    Attainment is over the requests a generous fixed fleet (the ceiling) serves in time."""
    from scaler.planner.constraints import fit_budget
    from scaler.replay import policies
    from scaler.replay.baselines import Static, ceiling_fleet
    from scaler.replay.scoring import feasible_keys, score
    from scaler.replay.needs import peak_need

    say = progress or (lambda m: log.info(m))
    engine = EngineConfig(startup_s=startup_s, ttft_ms=ttft_ms, itl_ms=itl_ms)
    ctx = {s.name: policies.RunContext(s.requests, profile, startup_s, ttft_ms, itl_ms) for s in specs}
    needs = {s.name: ctx[s.name].needs() for s in specs}
    scored = {s.name: [w for w in needs[s.name] if w.start_s >= s.scored_from_s] or needs[s.name] for s in specs}
    peak = {n: peak_need(w) for n, w in scored.items()}
    mean = {n: sum(w.prefill + w.decode for w in ws) / len(ws) for n, ws in scored.items()}
    first = {n: (max(1, w[0].prefill), max(1, w[0].decode)) if w else (1, 1)
             for n, w in ((s.name, ctx[s.name].needs(60.0)[:1]) for s in specs)}
    split = split_budget(mean, budget)
    feasible = {}
    for s in specs:
        c = Static(*ceiling_fleet(peak_need(needs[s.name])), name="ceiling")
        feasible[s.name] = feasible_keys(run(s.requests, c, replace(engine, initial_prefill=c.prefill,
                                                                   initial_decode=c.decode)))
    say(f"ceilings done; mean need {mean}, peak need {peak}, split of {budget}: {split}")

    modes: dict[str, dict[str, ReplayRun]] = {}
    deps = [FleetDeployment(s.name, s.requests, policies.make(policy, ctx[s.name]), s.priority, initial=first[s.name])
            for s in specs]
    shared = run_fleet(deps, budget, engine, interval_s, profile.prefill.ttft_ms_at)
    modes["shared"] = shared.runs
    say(f"shared budget done: {len(shared.rounds)} rounds")
    modes["fixed"] = {}
    for s in specs:
        p, d = _pools(peak[s.name], split[s.name])
        modes["fixed"][s.name] = run(s.requests, Static(p, d, name="fixed-split"),
                                     replace(engine, initial_prefill=p, initial_decode=d))
    say("fixed split done")
    modes["private"] = {}
    for s in specs:
        c = replace(ctx[s.name], gpu_budget=split[s.name])
        p, d, _ = fit_budget(*first[s.name], split[s.name], min_prefill=1, min_decode=1)
        modes["private"][s.name] = run(s.requests, policies.make(policy, c),
                                       replace(engine, initial_prefill=p, initial_decode=d), None,
                                       profile.prefill.ttft_ms_at)
    say("private budgets done")

    out: dict = {"budget": budget, "startup_s": startup_s, "ttft_ms": ttft_ms, "itl_ms": itl_ms, "policy": policy,
                 "priorities": {s.name: s.priority for s in specs}, "split": split, "mean_need_gpus": mean,
                 "peak_need_gpus": {n: p[0] + p[1] for n, p in peak.items()}, "modes": {}}
    for mode, runs in modes.items():
        rows = {}
        for s in specs:
            r = score(runs[s.name], s.name, feasible[s.name], s.scored_from_s)
            rows[s.name] = {k: r[k] for k in ("feasible_attainment", "feasible_requests", "sla_attainment",
                                              "requests", "gpu_hours", "max_gpus", "scale_events")}
        hits = sum(r["feasible_attainment"] * r["feasible_requests"] for r in rows.values())
        total = sum(r["feasible_requests"] for r in rows.values())
        steps = fleet_gpu_steps([runs[s.name] for s in specs])
        out["modes"][mode] = {
            "deployments": rows,
            "total": {"feasible_attainment": hits / total if total else 1.0, "feasible_requests": total,
                      "gpu_hours": sum(r["gpu_hours"] for r in rows.values()),
                      "peak_fleet_gpus": max(g for _, g in steps)},
        }
    out["shared_rounds"] = len(shared.rounds)
    out["shared_limited_share"] = {s.name: sum(s.name in r.limited for r in shared.rounds) / max(1, len(shared.rounds))
                                   for s in specs}
    out["shared_min_target"] = {s.name: min((sum(r.targets[s.name]) for r in shared.rounds if s.name in r.targets),
                                            default=None) for s in specs}
    out["shared_max_target_sum"] = max((sum(sum(t) for t in r.targets.values()) for r in shared.rounds), default=0)
    return {"summary": out, "shared": shared, "modes": modes}
