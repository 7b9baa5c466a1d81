"""KEDA's `metrics-api` trigger: `GET /keda/v1/{namespace}/{metric}?selector=...` answers JSON
whose numbers a GJSON `valueLocation` picks:

    {"metric": "dynamo_queue_depth", "namespace": "ns", "selector": "dgd=llm,service=decode",
     "value": 12, "count": 2, "avg": 6, "min": 4, "max": 8,
     "timestamp": "2026-01-01T00:00:00Z", "ageSeconds": 1.2,
     "items": [{"dgd": "llm", "service": "decode", "model": "m", "dynamo_namespace": "ns-llm",
                "value": 4}, ...]}

`value` is the sum over the matching series (what an HPA AverageValue target divides); use
`max`, `avg`, `items.0.value` or `items.#(service=="decode").value` for others. Errors are non-200 (KEDA
then counts a failure and applies its fallback), never a zero."""

from __future__ import annotations

import json
import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from external_metrics.reader import ReadError, Reader


def _json(body: dict, code: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=code, media_type="application/json")


def add_routes(app: FastAPI, reader: Reader) -> None:
    @app.get("/keda/v1")
    async def keda_signals():
        return _json({"signals": reader.signals})

    @app.get("/keda/v1/{namespace}/{metric}")
    async def keda_metric(namespace: str, metric: str, request: Request):
        q = request.query_params
        selector = q.get("selector", q.get("labelSelector"))
        try:
            r = reader.read(namespace, metric, selector)
        except ReadError as exc:
            return _json({"error": exc.message, "reason": exc.reason, "code": exc.code}, exc.code)
        vals = [v.value for v in r.values]
        return _json({
            "metric": r.signal, "namespace": namespace, "selector": selector or "",
            "value": sum(vals), "count": len(vals), "avg": sum(vals) / len(vals),
            "min": min(vals), "max": max(vals),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.collected_at)),
            "ageSeconds": round(max(0.0, time.time() - r.collected_at), 3),
            "items": [{**v.labels, "value": v.value} for v in r.values],
        })
