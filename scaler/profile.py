"""Performance profile of one worker: what sizing needs to turn load into replicas.

prefill: ISL -> TTFT (unloaded) and throughput per GPU (tokens/s at saturation)
decode:  (KV usage, context length) -> ITL and throughput per GPU (tokens/s)

Loads our JSON and Dynamo's profiler npz (prefill_isl, prefill_ttft, prefill_thpt_per_gpu,
max_kv_tokens, x_kv_usage, y_context_length, z_itl, z_thpt_per_gpu). Pure numpy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).parent / "data" / "mocker_profile.json"

NPZ_KEYS = ("prefill_isl", "prefill_ttft", "prefill_thpt_per_gpu", "max_kv_tokens",
            "x_kv_usage", "y_context_length", "z_itl", "z_thpt_per_gpu")


class ProfileError(ValueError):
    pass


def _arr(data: dict, key: str, where: str) -> np.ndarray:
    if key not in data:
        raise ProfileError(f"{where}: missing key {key!r}")
    arr = np.asarray(data[key], dtype=float).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ProfileError(f"{where}: key {key!r} must be a non-empty list of finite numbers")
    return arr


@dataclass(frozen=True)
class PrefillProfile:
    isl: np.ndarray
    ttft_ms: np.ndarray
    thpt_per_gpu: np.ndarray

    def __post_init__(self) -> None:
        order = np.argsort(self.isl)
        object.__setattr__(self, "isl", self.isl[order])
        object.__setattr__(self, "ttft_ms", self.ttft_ms[order])
        object.__setattr__(self, "thpt_per_gpu", self.thpt_per_gpu[order])

    def ttft_ms_at(self, isl: float) -> float:
        # linear in ISL beyond the measured range: prefill cost grows at least linearly
        if isl > self.isl[-1] and self.isl.size > 1:
            slope = (self.ttft_ms[-1] - self.ttft_ms[-2]) / max(1e-9, self.isl[-1] - self.isl[-2])
            return float(self.ttft_ms[-1] + slope * (isl - self.isl[-1]))
        return float(np.interp(isl, self.isl, self.ttft_ms))

    def throughput_per_gpu_at(self, isl: float) -> float:
        return float(np.interp(isl, self.isl, self.thpt_per_gpu))


@dataclass(frozen=True)
class DecodeProfile:
    kv_usage: np.ndarray
    context_length: np.ndarray
    itl_ms: np.ndarray
    thpt_per_gpu: np.ndarray
    max_kv_tokens: float

    def _nearest_context(self, context: float) -> np.ndarray:
        ctxs = np.unique(self.context_length)
        idx = int(np.argmin(np.abs(ctxs - context)))
        # the next larger measured context is the safe side
        if ctxs[idx] < context and idx + 1 < ctxs.size:
            idx += 1
        return self.context_length == ctxs[idx]

    def itl_ms_at(self, kv_usage: float, context_length: float) -> float:
        m = self._nearest_context(context_length)
        x, y = self.kv_usage[m], self.itl_ms[m]
        o = np.argsort(x)
        return float(np.interp(kv_usage, x[o], y[o]))

    def throughput_per_gpu_at(self, kv_usage: float, context_length: float) -> float:
        m = self._nearest_context(context_length)
        x, y = self.kv_usage[m], self.thpt_per_gpu[m]
        o = np.argsort(x)
        return float(np.interp(kv_usage, x[o], y[o]))

    def best_throughput_per_gpu(self, itl_target_ms: float, context_length: float) -> tuple[float, float]:
        """(throughput, kv usage) of the best point whose ITL meets the target at that context."""
        m = self._nearest_context(context_length)
        ok = m & (self.itl_ms <= itl_target_ms)
        if not ok.any():
            i = int(np.argmin(np.where(m, self.itl_ms, np.inf)))
            return float(self.thpt_per_gpu[i]), float(self.kv_usage[i])
        i = int(np.argmax(np.where(ok, self.thpt_per_gpu, -np.inf)))
        return float(self.thpt_per_gpu[i]), float(self.kv_usage[i])


@dataclass(frozen=True)
class PerformanceProfile:
    prefill: PrefillProfile
    decode: DecodeProfile
    gpus_per_prefill_worker: int = 1
    gpus_per_decode_worker: int = 1
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict, where: str = "profile") -> "PerformanceProfile":
        pre = PrefillProfile(_arr(data, "prefill_isl", where), _arr(data, "prefill_ttft", where),
                             _arr(data, "prefill_thpt_per_gpu", where))
        if not (pre.isl.size == pre.ttft_ms.size == pre.thpt_per_gpu.size):
            raise ProfileError(f"{where}: prefill_isl, prefill_ttft, prefill_thpt_per_gpu differ in length")
        x, y = _arr(data, "x_kv_usage", where), _arr(data, "y_context_length", where)
        z1, z2 = _arr(data, "z_itl", where), _arr(data, "z_thpt_per_gpu", where)
        if not (x.size == y.size == z1.size == z2.size):
            raise ProfileError(f"{where}: x_kv_usage, y_context_length, z_itl, z_thpt_per_gpu differ in length")
        max_kv = float(_arr(data, "max_kv_tokens", where)[0])
        if max_kv <= 0 or np.any(pre.thpt_per_gpu <= 0) or np.any(z2 < 0):
            raise ProfileError(f"{where}: max_kv_tokens and throughputs must be positive")
        return cls(pre, DecodeProfile(x, y, z1, z2, max_kv),
                   int(np.asarray(data.get("gpus_per_prefill_worker", 1)).ravel()[0]),
                   int(np.asarray(data.get("gpus_per_decode_worker", 1)).ravel()[0]),
                   str(np.asarray(data.get("source", where)).ravel()[0]))

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "gpus_per_prefill_worker": self.gpus_per_prefill_worker,
            "gpus_per_decode_worker": self.gpus_per_decode_worker,
            "prefill_isl": self.prefill.isl.tolist(), "prefill_ttft": self.prefill.ttft_ms.tolist(),
            "prefill_thpt_per_gpu": self.prefill.thpt_per_gpu.tolist(),
            "max_kv_tokens": [self.decode.max_kv_tokens],
            "x_kv_usage": self.decode.kv_usage.tolist(), "y_context_length": self.decode.context_length.tolist(),
            "z_itl": self.decode.itl_ms.tolist(), "z_thpt_per_gpu": self.decode.thpt_per_gpu.tolist(),
        }

    @classmethod
    def load(cls, path: str | Path) -> "PerformanceProfile":
        path = Path(path)
        if not path.is_file():
            raise ProfileError(f"{path}: no such profile file")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return cls.from_dict({k: npz[k] for k in npz.files}, str(path))
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path}: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data, str(path))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix == ".npz":
            np.savez(path, **{k: np.asarray(v) for k, v in self.to_dict().items() if k in NPZ_KEYS})
        else:
            path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def bundled_profile() -> PerformanceProfile:
    """The profile of the replay engine's default mocker worker, shipped with the package."""
    return PerformanceProfile.load(BUNDLED)


BUNDLED_VALUE = "bundled"
"""The profile file value that asks for the bundled mocker profile (a file of that name wins)."""

ONLINE_FIT = "online-fit"


def wants_bundled(path: str | Path | None) -> bool:
    """`profile_file: bundled` (resolved against the config's folder it keeps its name), unless
    a file of that name exists."""
    return bool(path) and Path(path).name == BUNDLED_VALUE and not Path(path).is_file()


def planner_profile(path: str | Path | None) -> tuple[PerformanceProfile | None, str]:
    """The profile the live planner sizes with and its `profile_source`: "file" for the given
    profile, "bundled" for the mocker's when the file value is `bundled`, else (None,
    "online-fit") with a warning: the planner fits a profile from its own observations
    (scaler/planner/online_fit.py) and sizes from its queues and KV usage until the fit is trusted."""
    if wants_bundled(path):
        log.warning("sizing with the bundled profile of Dynamo's mocker worker (profile_file: bundled), which "
                    "describes no real GPU", extra={"profile_source": "bundled", "profile": str(BUNDLED)})
        return bundled_profile(), "bundled"
    if path:
        return PerformanceProfile.load(path), "file"
    log.warning("no performance profile given: the planner fits one online from its observations and sizes "
                "from its queues and KV usage until the fit is trusted; give the planner a profile of your "
                "workers (chart value planner.profile, config profile_file) to size from it at once",
                extra={"profile_source": ONLINE_FIT})
    return None, ONLINE_FIT
