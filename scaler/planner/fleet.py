"""One GPU budget shared by several deployments (DGDs), by priority. Pure.

Each deployment's planner proposes a plan (the prefill and decode replicas it wants, its
minimum per pool, its priority, the GPUs one replica of each pool takes); `allocate` grants
replicas so that the grants together never exceed the budget:

1. Minimums first, for everyone: no deployment is granted less than its minimums, whatever its
   priority. A plan asking for fewer replicas than its minimum is granted the minimum. If the
   minimums alone exceed the budget, the result says so (`minimums_over_budget`), grants exactly
   the minimums and marks every deployment that wanted more `BudgetLimited`.
2. Then priority classes, higher first: a class is granted all it wants if what is left covers
   it; otherwise what is left is shared within the class and lower classes get nothing more
   (except GPUs too few for any replica the class still wants: those go on down, so a 1-GPU
   replica of a lower class can use a GPU an 8-GPU replica cannot).
3. Within a class, proportionally to need: replicas are handed out one at a time to the
   deployment with the largest unmet share of its plan, (wanted - granted) / wanted in GPUs,
   which ends with every deployment served the same share as far as replica sizes allow. Inside
   a deployment the replica goes to the pool with the larger unmet share of its own need (the
   single-deployment rule of scaler.planner.constraints.fit_budget). Ties go to the deployment
   listed first, so the result is deterministic.
   Why proportional and not by marginal attainment: the plans the planner produces carry no
   curve of attainment against GPUs, and a share of need is scale-free, explainable ("everyone
   in this class got 70% of its plan") and needs no model that could be wrong.
4. Stability: given the previous grants, a replica a deployment held last time is handed out to
   it with its unmet share raised by `stickiness` (default 0.05). So a replica changes hands
   only when the taker's unmet share exceeds the holder's by more than that: a planner's plan
   wobbling by a replica cannot make two deployments trade GPUs back and forth every interval.
   Stickiness never overrides a priority or a minimum, and never grants more than a plan asks.

`admit` then turns grants into replica targets a deployment can start now: GPUs that another
deployment still holds (running, starting or draining) are not free, so an increase waits until
they are released, as pods would stay Pending on a real cluster. Grants and targets are
replica counts; GPUs are replicas x GPUs per replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GRANTED = "Granted"
BUDGET_LIMITED = "BudgetLimited"
DEFAULT_STICKINESS = 0.05


class FleetError(ValueError):
    """A plan or budget that cannot be allocated; the message names the deployment and field."""


@dataclass(frozen=True)
class DeploymentPlan:
    name: str
    prefill: int  # replicas the deployment's planner wants
    decode: int
    min_prefill: int = 1
    min_decode: int = 1
    priority: int = 0  # higher is served first
    gpus_per_prefill: int = 1
    gpus_per_decode: int = 1

    @property
    def wanted_prefill(self) -> int:
        return max(self.prefill, self.min_prefill)

    @property
    def wanted_decode(self) -> int:
        return max(self.decode, self.min_decode)

    @property
    def wanted_gpus(self) -> int:
        return self.wanted_prefill * self.gpus_per_prefill + self.wanted_decode * self.gpus_per_decode

    @property
    def min_gpus(self) -> int:
        return self.min_prefill * self.gpus_per_prefill + self.min_decode * self.gpus_per_decode


@dataclass(frozen=True)
class Grant:
    name: str
    prefill: int
    decode: int
    gpus: int
    wanted_gpus: int
    min_gpus: int
    condition: str  # GRANTED or BUDGET_LIMITED

    @property
    def limited(self) -> bool:
        return self.condition == BUDGET_LIMITED


@dataclass(frozen=True)
class Allocation:
    budget: int
    grants: dict[str, Grant]  # in the order of the plans
    minimums_over_budget: bool
    message: str

    @property
    def granted_gpus(self) -> int:
        return sum(g.gpus for g in self.grants.values())

    @property
    def unused_gpus(self) -> int:
        return max(0, self.budget - self.granted_gpus)

    def __getitem__(self, name: str) -> Grant:
        return self.grants[name]


@dataclass(frozen=True)
class Holding:
    """Replicas a deployment holds now, per pool: running (active + starting) and draining."""

    prefill: int = 0
    decode: int = 0
    prefill_draining: int = 0
    decode_draining: int = 0


def _check_int(value: object, where: str, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FleetError(f"{where} must be an integer, got {value!r}")
    if value < lo:
        raise FleetError(f"{where} must be >= {lo}, got {value}")


def _validate(plans: Sequence[DeploymentPlan], budget: object) -> None:
    _check_int(budget, "budget", 0)
    seen: set[str] = set()
    for i, p in enumerate(plans):
        if not isinstance(p, DeploymentPlan):
            raise FleetError(f"plan #{i} must be a DeploymentPlan, got {type(p).__name__}")
        if not isinstance(p.name, str) or not p.name:
            raise FleetError(f"plan #{i}: name must be a non-empty string, got {p.name!r}")
        if p.name in seen:
            raise FleetError(f"deployment {p.name!r} is listed twice")
        seen.add(p.name)
        for field_name, lo in (("prefill", 0), ("decode", 0), ("min_prefill", 0), ("min_decode", 0),
                               ("gpus_per_prefill", 1), ("gpus_per_decode", 1)):
            _check_int(getattr(p, field_name), f"deployment {p.name!r}: {field_name}", lo)
        _check_int(p.priority, f"deployment {p.name!r}: priority", -(2 ** 31))


def _previous(previous: Allocation | Mapping[str, tuple[int, int]] | None) -> dict[str, tuple[int, int]]:
    if previous is None:
        return {}
    if isinstance(previous, Allocation):
        return {n: (g.prefill, g.decode) for n, g in previous.grants.items()}
    return {n: (int(p), int(d)) for n, (p, d) in previous.items()}


def allocate(plans: Sequence[DeploymentPlan], budget: int,
             previous: Allocation | Mapping[str, tuple[int, int]] | None = None,
             stickiness: float = DEFAULT_STICKINESS) -> Allocation:
    """Grant replicas to `plans` within `budget` GPUs (see the module docstring for the rule).
    `previous`: the last allocation (or name -> (prefill, decode)), for stickiness."""
    plans = list(plans)
    _validate(plans, budget)
    if not (isinstance(stickiness, (int, float)) and 0 <= stickiness < 1):
        raise FleetError(f"stickiness must be in [0, 1), got {stickiness!r}")
    prev = _previous(previous)
    pre = {p.name: p.min_prefill for p in plans}
    dec = {p.name: p.min_decode for p in plans}
    minimums = sum(p.min_gpus for p in plans)
    over = minimums > budget
    left = budget - minimums
    if not over:
        for prio in sorted({p.priority for p in plans}, reverse=True):
            group = [p for p in plans if p.priority == prio]
            extra = sum(p.wanted_gpus - p.min_gpus for p in group)
            if extra <= left:
                for p in group:
                    pre[p.name], dec[p.name] = p.wanted_prefill, p.wanted_decode
                left -= extra
                continue
            left = _share(group, left, pre, dec, prev, stickiness)
    grants = {}
    for p in plans:
        gpus = pre[p.name] * p.gpus_per_prefill + dec[p.name] * p.gpus_per_decode
        cut = pre[p.name] < p.wanted_prefill or dec[p.name] < p.wanted_decode
        grants[p.name] = Grant(p.name, pre[p.name], dec[p.name], gpus, p.wanted_gpus, p.min_gpus,
                               BUDGET_LIMITED if cut else GRANTED)
    if over:
        message = (f"the minimums alone need {minimums} GPUs, over the budget of {budget}: "
                   f"granting only the minimums")
    else:
        limited = [g.name for g in grants.values() if g.limited]
        message = (f"budget {budget}: {', '.join(limited)} limited" if limited
                   else f"budget {budget}: every plan granted in full")
    return Allocation(budget, grants, over, message)


def _share(group: list[DeploymentPlan], left: int, pre: dict[str, int], dec: dict[str, int],
           prev: dict[str, tuple[int, int]], stickiness: float) -> int:
    """Water-filling within one priority class: one replica at a time to the largest unmet share."""
    while True:
        best = None
        for order, p in enumerate(group):
            held = pre[p.name] * p.gpus_per_prefill + dec[p.name] * p.gpus_per_decode
            share = (p.wanted_gpus - held) / p.wanted_gpus if p.wanted_gpus else 0.0
            last = prev.get(p.name, (0, 0))
            for pool, have, want, size, before in (
                    ("prefill", pre[p.name], p.wanted_prefill, p.gpus_per_prefill, last[0]),
                    ("decode", dec[p.name], p.wanted_decode, p.gpus_per_decode, last[1])):
                if have >= want or size > left:
                    continue
                key = (share + (stickiness if have < before else 0.0), (want - have) / want,
                       -order, pool == "prefill")
                if best is None or key > best[0]:
                    best = (key, p, pool, size)
        if best is None:
            return left
        _, p, pool, size = best
        if pool == "prefill":
            pre[p.name] += 1
        else:
            dec[p.name] += 1
        left -= size


def admit(plans: Sequence[DeploymentPlan], allocation: Allocation, held: Mapping[str, Holding],
          budget: int) -> dict[str, tuple[int, int]]:
    """Replica targets (prefill, decode) to apply now. A decrease applies at once (its workers
    drain, still holding their GPUs until they finish); an increase only as far as GPUs are free
    now, budget minus everything held, higher priority first, then in the order of the plans.
    Deployments missing from `held` hold nothing."""
    plans = list(plans)
    _validate(plans, budget)
    free = budget - sum((h.prefill + h.prefill_draining) * p.gpus_per_prefill
                        + (h.decode + h.decode_draining) * p.gpus_per_decode
                        for p in plans for h in [held.get(p.name, Holding())])
    out: dict[str, tuple[int, int]] = {}
    ranked = sorted(range(len(plans)), key=lambda i: (-plans[i].priority, i))
    for i in ranked:
        p, g = plans[i], allocation[plans[i].name]
        h = held.get(p.name, Holding())
        targets = []
        for grant, running, size in ((g.prefill, h.prefill, p.gpus_per_prefill),
                                     (g.decode, h.decode, p.gpus_per_decode)):
            if grant <= running:
                targets.append(grant)
                continue
            add = min(grant - running, max(0, free) // size)
            free -= add * size
            targets.append(running + add)
        out[p.name] = (targets[0], targets[1])
    return out
