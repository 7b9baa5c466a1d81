"""Read request traces (Mooncake JSONL, Azure LLM inference CSV), reshape them, write them back
in the replay engine's native format. Malformed input is an error naming the row and field."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 512  # tokens per hash block in the Mooncake format


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = field(default=(), compare=False)


def detect_format(path: Path) -> str:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                return "mooncake"
            if line.upper().startswith("TIMESTAMP"):
                return "azure"
            break
    raise TraceError(f"{path}: cannot tell the format: expected JSON lines (mooncake) or a CSV "
                     "with header TIMESTAMP,ContextTokens,GeneratedTokens (azure)")


def _positive_int(value: object, where: str, name: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TraceError(f"{where}: field {name!r} must be an integer, got {value!r}")
    try:
        num = float(value)
    except ValueError:
        raise TraceError(f"{where}: field {name!r} must be an integer, got {value!r}") from None
    if not math.isfinite(num) or num != int(num) or num < (0 if allow_zero else 1):
        raise TraceError(f"{where}: field {name!r} must be an integer >= {0 if allow_zero else 1}, got {value!r}")
    return int(num)


def read_mooncake(path: Path) -> list[Request]:
    out: list[Request] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TraceError(f"{where}: expected a JSON object")
            for key in ("timestamp", "input_length", "output_length"):
                if key not in row:
                    raise TraceError(f"{where}: missing field {key!r}")
            ts = row["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
                raise TraceError(f"{where}: field 'timestamp' must be a number of ms >= 0, got {ts!r}")
            hashes = row.get("hash_ids", [])
            if not isinstance(hashes, list) or not all(isinstance(h, int) for h in hashes):
                raise TraceError(f"{where}: field 'hash_ids' must be a list of integers")
            out.append(Request(float(ts), _positive_int(row["input_length"], where, "input_length"),
                               _positive_int(row["output_length"], where, "output_length"), tuple(hashes)))
    return _checked(out, path)


def _parse_time(text: str, where: str) -> float:
    """ISO date-time -> ms since the epoch. Fractions of any length (the 2023 release writes 7
    digits), with or without an offset (the 2024 release writes +00:00); without one, UTC, so
    that the machine's zone and its daylight-saving changes do not move a request."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise TraceError(f"{where}: field 'TIMESTAMP' is not a date-time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp() * 1000.0


def read_azure(path: Path) -> list[Request]:
    rows: list[tuple[float, int, int]] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise TraceError(f"{path}:1: header must contain {sorted(need)}, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, 2):
            where = f"{path}:{lineno}"
            if None in row.values() or None in row:
                raise TraceError(f"{where}: wrong number of columns")
            rows.append((_parse_time(row["TIMESTAMP"], where),
                         _positive_int(row["ContextTokens"], where, "ContextTokens"),
                         _positive_int(row["GeneratedTokens"], where, "GeneratedTokens")))
    if not rows:
        raise TraceError(f"{path}: no requests")
    t0 = min(r[0] for r in rows)
    out, next_hash = [], 0
    for ts, isl, osl in sorted(rows, key=lambda r: r[0]):
        n = math.ceil(isl / BLOCK)
        out.append(Request(ts - t0, isl, osl, tuple(range(next_hash, next_hash + n))))
        next_hash += n  # the CSV has no prefix information: no request shares blocks
    return _checked(out, path)


def _checked(reqs: list[Request], path: Path) -> list[Request]:
    if not reqs:
        raise TraceError(f"{path}: no requests")
    return sorted(reqs, key=lambda r: r.timestamp_ms)


def read_trace(path: str | Path, fmt: str | None = None) -> list[Request]:
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    fmt = fmt or detect_format(path)
    if fmt == "mooncake":
        return read_mooncake(path)
    if fmt == "azure":
        return read_azure(path)
    raise TraceError(f"unknown trace format {fmt!r}: use mooncake or azure")


def scale_rate(reqs: list[Request], k: float, seed: int = 0, jitter_ms: float = 250.0) -> list[Request]:
    """Multiply the arrival rate by `k`, keeping duration and burst shape: each request is kept
    floor(k) times plus once more with probability frac(k), copies jittered by up to `jitter_ms`."""
    if k <= 0:
        raise TraceError("rate scale must be > 0")
    if k == 1:
        return list(reqs)
    rng = random.Random(seed)
    out: list[Request] = []
    next_hash = max((h for r in reqs for h in r.hash_ids), default=-1) + 1
    whole, frac = int(k), k - int(k)
    for r in reqs:
        copies = whole + (1 if rng.random() < frac else 0)
        for c in range(copies):
            if c == 0:
                out.append(r)
                continue
            n = len(r.hash_ids)
            ts = max(0.0, r.timestamp_ms + rng.uniform(-jitter_ms, jitter_ms))
            out.append(Request(ts, r.input_length, r.output_length, tuple(range(next_hash, next_hash + n))))
            next_hash += n
    return sorted(out, key=lambda r: r.timestamp_ms)


def scale_time(reqs: list[Request], factor: float) -> list[Request]:
    """Compress time by `factor` (2 = twice as fast)."""
    if factor <= 0:
        raise TraceError("time scale must be > 0")
    return [Request(r.timestamp_ms / factor, r.input_length, r.output_length, r.hash_ids) for r in reqs]


def parse_window(text: str) -> tuple[float, float]:
    """`--window START:END` (seconds) as (start, end); ValueError naming the flag otherwise."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError("--window must be START:END in seconds, e.g. 0:600") from None
    if a < 0 or b <= a:
        raise ValueError("--window needs 0 <= START < END")
    return a, b


def window(reqs: list[Request], start_s: float, end_s: float) -> list[Request]:
    """The requests in [start_s, end_s), re-based to start at 0."""
    sel = [r for r in reqs if start_s * 1000 <= r.timestamp_ms < end_s * 1000]
    return [Request(r.timestamp_ms - start_s * 1000, r.input_length, r.output_length, r.hash_ids) for r in sel]


def write_mooncake(reqs: list[Request], path: Path) -> Path:
    # requests without hash ids get fresh ones: made-up prefixes must not hit the prefix cache
    fresh = max((h for r in reqs for h in r.hash_ids), default=-1) + 1
    with open(path, "w", encoding="utf-8") as fh:
        for r in reqs:
            hashes = list(r.hash_ids)
            if not hashes:
                n = math.ceil(r.input_length / BLOCK)
                hashes, fresh = list(range(fresh, fresh + n)), fresh + n
            fh.write(json.dumps({"timestamp": round(r.timestamp_ms, 3), "input_length": r.input_length,
                                 "output_length": r.output_length, "hash_ids": hashes}) + "\n")
    return path


def prefix_reuse(reqs: list[Request], block: int = BLOCK) -> list[tuple[int, float | None]]:
    """Per request (in the given order): the prompt tokens an earlier request already had (its
    leading hash ids seen before, times the block size, at most its length) and the seconds since
    a request last had them (None when nothing was). What some worker's prefix cache may hold when
    it arrives, and for how long it had to keep it (eviction and which worker holds it are not
    known here)."""
    last: dict[int, float] = {}
    out: list[tuple[int, tuple[int, float | None]]] = []
    for i in sorted(range(len(reqs)), key=lambda k: reqs[k].timestamp_ms):
        r = reqs[i]
        n = 0
        for h in r.hash_ids:
            if h not in last:
                break
            n += 1
        age = (r.timestamp_ms - last[r.hash_ids[n - 1]]) / 1000.0 if n else None
        out.append((i, (min(r.input_length, n * block), age)))
        for h in r.hash_ids:
            last[h] = r.timestamp_ms
    return [reuse for _, reuse in sorted(out)]


def duration_s(reqs: list[Request]) -> float:
    return (reqs[-1].timestamp_ms - reqs[0].timestamp_ms) / 1000.0 if reqs else 0.0
