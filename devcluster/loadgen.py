"""Replay a request trace against an OpenAI-compatible frontend and measure what clients see.

    python -m devcluster.loadgen --url http://127.0.0.1:8000 --trace trace.jsonl --speed 4

Each trace request becomes a streaming `/v1/completions` call at its (time-compressed) arrival
time, with a prompt of exactly its input length (the local model card's word tokenizer) and
`max_tokens` set to its output length. TTFT is the time to the first streamed token, ITL the
mean gap between the following ones. A request fails when the HTTP status is not 200, the
stream carries an error, breaks, or ends with fewer tokens than asked for.

A paused host (a frozen VM: the wall clock jumps, the monotonic one stands still) or a stalled
process shows up as `host_pauses`. Dynamo's discovery entries expire during such a pause, and
failures while the workers come back are counted apart (`failed_unexplained` excludes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

from devcluster.dynamo.model import MODEL_NAME, prompt_of
from dynamo_scaling.traces import Request, read_trace, window

log = logging.getLogger(__name__)


# after a host pause, how long failures are put down to it: Dynamo's discovery store expires
# entries untouched for 10 s, and a worker that lost them is drained and started again
PAUSE_RECOVERY_S = 30.0


@dataclass
class Outcome:
    index: int
    sent_at_s: float
    ok: bool
    error: str = ""
    ttft_s: float | None = None
    itl_s: float | None = None
    tokens: int = 0
    input_length: int = 0
    output_length: int = 0
    ended_at_s: float | None = None


@dataclass(frozen=True)
class HostPause:
    at_s: float  # on the load's own (monotonic) clock, from its start
    seconds: float


class PauseWatch:
    """Sampled often, it notices time the process did not see pass: the wall clock running ahead
    of the monotonic one (a paused VM), or a sample far later than asked for (a stalled loop)."""

    def __init__(self, start: float, interval_s: float = 0.25, min_pause_s: float = 3.0,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic) -> None:
        self.start, self.interval_s, self.min_pause_s = start, interval_s, min_pause_s
        self._wall, self._mono = wall, mono
        self._last = (wall(), mono())
        self.pauses: list[HostPause] = []

    def tick(self) -> HostPause | None:
        wall, mono = self._wall(), self._mono()
        d_wall, d_mono = wall - self._last[0], mono - self._last[1]
        self._last = (wall, mono)
        lost = max(d_wall - d_mono, d_mono - self.interval_s)
        if lost < self.min_pause_s:
            return None
        pause = HostPause(at_s=mono - self.start, seconds=lost)
        self.pauses.append(pause)
        log.warning("host pause seen by the load generator",
                    extra={"at_s": round(pause.at_s, 1), "seconds": round(lost, 1)})
        return pause

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.tick()


@dataclass
class Summary:
    requests: int
    ok: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    ttft_ms: dict[str, float] = field(default_factory=dict)
    itl_ms: dict[str, float] = field(default_factory=dict)
    host_pauses: list[dict[str, float]] = field(default_factory=list)
    # failures none of the host pauses explains: what a test holds at zero
    failed_unexplained: int = 0

    def line(self) -> str:
        t, i = self.ttft_ms, self.itl_ms
        pauses = "".join(f"; host paused {p['seconds']:.1f} s at {p['at_s']:.1f} s" for p in self.host_pauses)
        return (f"{self.requests} requests in {self.duration_s:.1f} s: {self.ok} ok, {self.failed} failed"
                + (f" {self.errors}" if self.errors else "")
                + (f" ({self.failed - self.failed_unexplained} after a host pause)" if self.host_pauses else "")
                + (f"; TTFT p50 {t['p50']:.0f} ms p95 {t['p95']:.0f} ms" if t else "")
                + (f"; ITL p50 {i['p50']:.1f} ms p95 {i['p95']:.1f} ms" if i else "")
                + pauses)


def synthetic(rate_per_s: float, duration_s: float, input_length: int, output_length: int,
              seed: int | None = None) -> list[Request]:
    """A steady load for tests and demos: evenly spaced requests, or with a seed Poisson arrivals
    at the same mean rate (evenly spaced requests against a scrape interval that divides their
    period show every scrape the same phase of the load)."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate_per_s and duration_s must be > 0")
    n = int(rate_per_s * duration_s)
    if seed is None:
        at = np.arange(n) * 1000.0 / rate_per_s
    else:
        gaps = np.random.default_rng(seed).exponential(1000.0 / rate_per_s, n)
        gaps[0] = 0.0
        at = np.cumsum(gaps)
    return [Request(float(t), input_length, output_length) for t in at]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values) * 1000.0
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean())}


def _after_pause(o: Outcome, pauses: list[HostPause]) -> bool:
    """In flight when a pause happened, or sent while the stack recovered from it."""
    end = o.ended_at_s if o.ended_at_s is not None else o.sent_at_s
    return any(o.sent_at_s <= p.at_s + PAUSE_RECOVERY_S and end >= p.at_s - 1.0 for p in pauses)


def summarize(outcomes: list[Outcome], duration_s: float, pauses: list[HostPause] = ()) -> Summary:
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    errors = Counter(o.error.split(":")[0] for o in failed)
    return Summary(len(outcomes), len(ok), len(failed), dict(errors), duration_s,
                   _percentiles([o.ttft_s for o in ok if o.ttft_s is not None]),
                   _percentiles([o.itl_s for o in ok if o.itl_s is not None]),
                   [{"at_s": round(p.at_s, 1), "seconds": round(p.seconds, 1)} for p in pauses],
                   sum(1 for o in failed if not _after_pause(o, list(pauses))))


async def _one(client: httpx.AsyncClient, url: str, model: str, index: int, req: Request,
               load_start: float) -> Outcome:
    out = await _send(client, url, model, index, req, time.monotonic() - load_start)
    out.ended_at_s = time.monotonic() - load_start
    return out


async def _send(client: httpx.AsyncClient, url: str, model: str, index: int, req: Request,
                sent_at: float) -> Outcome:
    out = Outcome(index, sent_at, False, input_length=req.input_length, output_length=req.output_length)
    body = {"model": model, "prompt": prompt_of(req.input_length, seed=index),
            "max_tokens": req.output_length, "stream": True, "stream_options": {"include_usage": True}}
    start = time.monotonic()
    stamps: list[float] = []
    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")[:200]
                out.error = f"http {resp.status_code}: {text}"
                return out
            done = False
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    out.error = f"stream error: {chunk['error']}"
                    return out
                for choice in chunk.get("choices") or []:
                    if choice.get("text"):
                        stamps.append(time.monotonic())
                usage = chunk.get("usage")
                if usage:
                    out.tokens = int(usage.get("completion_tokens") or 0)
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    if not done:
        out.error = "truncated: stream ended without [DONE]"
        return out
    out.tokens = out.tokens or len(stamps)
    if out.tokens < req.output_length:
        out.error = f"short: {out.tokens} of {req.output_length} tokens"
        return out
    out.ok = True
    if stamps:
        out.ttft_s = stamps[0] - start
        if len(stamps) > 1:
            out.itl_s = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return out


async def run_load(url: str, requests: list[Request], speed: float = 1.0, model: str = MODEL_NAME,
                   progress_every_s: float = 5.0, stop: asyncio.Event | None = None,
                   on_progress: Callable[[dict], None] | None = None) -> tuple[Summary, list[Outcome]]:
    """Send `requests` at their arrival times divided by `speed`; wait for all to finish."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    url = url.rstrip("/")
    t0_ms = requests[0].timestamp_ms if requests else 0.0
    start = time.monotonic()
    watch = PauseWatch(start)
    watcher = asyncio.create_task(watch.run())
    tasks: list[asyncio.Task] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0), limits=limits) as client:
            last_report = start

            def report(final: bool = False) -> None:
                done = [t for t in tasks if t.done()]
                failed = sum(1 for t in done if not t.result().ok)
                info = {"sent": len(tasks), "total": len(requests), "done": len(done), "failed": failed,
                        "inflight": len(tasks) - len(done), "elapsed_s": round(time.monotonic() - start, 1)}
                (on_progress or (lambda i: log.info("load progress", extra=i)))(info)

            for i, req in enumerate(requests):
                if stop is not None and stop.is_set():
                    break
                due = start + (req.timestamp_ms - t0_ms) / 1000.0 / speed
                while (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(min(delay, progress_every_s))
                    if time.monotonic() - last_report >= progress_every_s:
                        report()
                        last_report = time.monotonic()
                tasks.append(asyncio.create_task(_one(client, url, model, i, req, start)))
            while tasks and not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=progress_every_s)
                report()
    finally:
        watcher.cancel()
    outcomes = [t.result() for t in tasks]
    return summarize(outcomes, time.monotonic() - start, watch.pauses), outcomes


def main(argv: list[str] | None = None) -> int:
    from dynamo_scaling.logs import setup_logging

    p = argparse.ArgumentParser(prog="python -m devcluster.loadgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="frontend base URL, e.g. http://127.0.0.1:8000")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", type=Path, help="Mooncake JSONL or Azure CSV trace")
    src.add_argument("--rate", type=float, help="steady synthetic load: requests per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of synthetic load, or of the trace (default 60)")
    p.add_argument("--start", type=float, default=0.0, help="trace: start this many seconds in")
    p.add_argument("--isl", type=int, default=512, help="synthetic input length in tokens (default 512)")
    p.add_argument("--osl", type=int, default=64, help="synthetic output length in tokens (default 64)")
    p.add_argument("--max-isl", type=int, default=16384, help="clip trace input lengths (default 16384)")
    p.add_argument("--speed", type=float, default=1.0, help="time compression of the trace (default 1)")
    p.add_argument("--model", default=MODEL_NAME)
    p.add_argument("--json", type=Path, help="write the summary and per-request outcomes here")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    args = p.parse_args(argv)
    for name in ("duration", "speed"):
        if getattr(args, name) <= 0:
            p.error(f"--{name}: must be > 0")
    setup_logging("INFO", args.log_format)
    if args.trace:
        try:
            reqs = window(read_trace(args.trace), args.start, args.start + args.duration)
        except (OSError, ValueError) as exc:
            p.error(f"--trace: {exc}")
        reqs = [Request(r.timestamp_ms, min(r.input_length, args.max_isl), r.output_length) for r in reqs]
    else:
        if args.rate <= 0 or args.isl < 1 or args.osl < 1:
            p.error("--rate must be > 0, --isl and --osl >= 1")
        reqs = synthetic(args.rate, args.duration, args.isl, args.osl)
    if not reqs:
        p.error("no requests in the chosen window")
    summary, outcomes = asyncio.run(run_load(args.url, reqs, args.speed, args.model))
    print(summary.line())
    if args.json:
        args.json.write_text(json.dumps({"summary": asdict(summary),
                                         "requests": [asdict(o) for o in outcomes]}, indent=1))
        print(f"wrote {args.json}")
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
