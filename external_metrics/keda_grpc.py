"""KEDA external scaler (`externalscaler.ExternalScaler`) over gRPC, answered from the cache.

Trigger metadata (the ScaledObject's `triggers[].metadata`):

    metric: dynamo_queue_depth         # required: a signal name
    dgd: llama-disagg                  # optional equality filters on metricLabels:
    service: decode                    #   dgd, service, model, dynamo_namespace
    selector: "model in (a,b)"         # optional Kubernetes label selector (ANDed with the above)
    namespace: ns                      # only the ScaledObject's own namespace (the default)
    aggregate: sum                     # sum (default), max, avg or min over matching series
    targetValue: "8"                   # GetMetricSpec target (default 1)
    activationTargetValue: "0"         # IsActive is value > this (default 0)
    metricName: queue                  # name reported to KEDA (default: the signal name)

Errors map to gRPC status codes (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE); KEDA counts them
as scaler failures and applies its fallback. No data is never reported as zero.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import grpc

from external_metrics.metrics import ServerMetrics
from external_metrics.proto import externalscaler_pb2 as pb
from external_metrics.quantity import parse_quantity
from external_metrics.reader import BadRequest, NotFound, ReadError, Reader, ServiceUnavailable
from external_metrics.selectors import SelectorError, validate_value

log = logging.getLogger(__name__)

SERVICE = "externalscaler.ExternalScaler"
FILTER_KEYS = ("dgd", "service", "model", "dynamo_namespace")
_AGG = {"sum": sum, "max": max, "min": min, "avg": lambda v: sum(v) / len(v)}
class Forbidden(ReadError):
    code, reason = 403, "Forbidden"


_CODES = {BadRequest: grpc.StatusCode.INVALID_ARGUMENT, NotFound: grpc.StatusCode.NOT_FOUND,
          ServiceUnavailable: grpc.StatusCode.UNAVAILABLE, Forbidden: grpc.StatusCode.PERMISSION_DENIED}


def _number(meta: dict[str, str], key: str, default: float) -> float:
    raw = meta.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = parse_quantity(raw)
    except ValueError:
        raise BadRequest(f"{key}: {raw!r} is not a number") from None
    if not math.isfinite(v):
        raise BadRequest(f"{key}: {raw!r} is not finite")
    return v


def selector_from_metadata(meta: dict[str, str]) -> str:
    parts = []
    for key in FILTER_KEYS:
        if key in meta:
            try:
                validate_value(meta[key])
            except SelectorError as exc:
                raise BadRequest(f"{key}: {exc}") from None
            parts.append(f"{key}={meta[key]}")
    if meta.get("selector", "").strip():
        parts.append(meta["selector"].strip())
    return ",".join(parts)


class ExternalScaler:
    def __init__(self, reader: Reader, metrics: ServerMetrics | None = None, stream_interval_s: float = 5.0) -> None:
        self.reader, self.metrics, self.stream_interval_s = reader, metrics, stream_interval_s

    def value(self, ref: pb.ScaledObjectRef) -> tuple[str, float]:
        """(signal, aggregated value) for a ScaledObjectRef; raises ReadError."""
        meta = dict(ref.scalerMetadata)
        metric = meta.get("metric") or meta.get("metricName")
        if not metric:
            raise BadRequest("trigger metadata needs `metric` (a signal name)")
        agg = meta.get("aggregate", "sum")
        if agg not in _AGG:
            raise BadRequest(f"aggregate: {agg!r} is not one of {', '.join(_AGG)}")
        namespace = meta.get("namespace") or ref.namespace
        if namespace != ref.namespace:
            # a ScaledObject reads its own namespace: a trigger must not reach into another team's
            raise Forbidden(f'a ScaledObject in namespace "{ref.namespace}" may not read namespace "{namespace}"')
        reading = self.reader.read(namespace, metric, selector_from_metadata(meta))
        return reading.signal, float(_AGG[agg]([v.value for v in reading.values]))

    def _name(self, ref: pb.ScaledObjectRef) -> str:
        meta = ref.scalerMetadata
        return meta.get("metricName") or meta.get("metric") or "dynamo"

    async def _call(self, method: str, context, fn):
        started = time.perf_counter()
        code = "OK"
        try:
            return fn()
        except ReadError as exc:
            code = _CODES.get(type(exc), grpc.StatusCode.INTERNAL)
            await context.abort(code, exc.message)
        finally:
            if self.metrics:
                label = code if isinstance(code, str) else code.name
                self.metrics.requests.labels("grpc", method, label).observe(time.perf_counter() - started)

    # -- the four RPCs ---------------------------------------------------------------------
    async def IsActive(self, request: pb.ScaledObjectRef, context) -> pb.IsActiveResponse:  # noqa: N802
        def fn():
            _, v = self.value(request)
            return pb.IsActiveResponse(result=v > _number(dict(request.scalerMetadata), "activationTargetValue", 0.0))
        return await self._call("IsActive", context, fn)

    async def GetMetricSpec(self, request: pb.ScaledObjectRef, context) -> pb.GetMetricSpecResponse:  # noqa: N802
        def fn():
            meta = dict(request.scalerMetadata)
            if not (meta.get("metric") or meta.get("metricName")):
                raise BadRequest("trigger metadata needs `metric` (a signal name)")
            self.reader.resolve(meta.get("metric") or meta["metricName"])
            target = _number(meta, "targetValue", 1.0)
            if target <= 0:
                raise BadRequest("targetValue must be > 0")
            return pb.GetMetricSpecResponse(metricSpecs=[pb.MetricSpec(
                metricName=self._name(request), targetSize=max(1, round(target)), targetSizeFloat=target)])
        return await self._call("GetMetricSpec", context, fn)

    async def GetMetrics(self, request: pb.GetMetricsRequest, context) -> pb.GetMetricsResponse:  # noqa: N802
        def fn():
            _, v = self.value(request.scaledObjectRef)
            name = request.metricName or self._name(request.scaledObjectRef)
            return pb.GetMetricsResponse(metricValues=[pb.MetricValue(
                metricName=name, metricValue=int(round(v)), metricValueFloat=v)])
        return await self._call("GetMetrics", context, fn)

    async def StreamIsActive(self, request: pb.ScaledObjectRef, context):  # noqa: N802
        """Sends the activity at once, then whenever it changes (checked every interval);
        while the value is unavailable nothing is sent."""
        threshold = _number(dict(request.scalerMetadata), "activationTargetValue", 0.0)
        last: bool | None = None
        while True:
            try:
                _, v = self.value(request)
                active = v > threshold
                if active != last:
                    yield pb.IsActiveResponse(result=active)
                    last = active
            except BadRequest as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
            except ReadError:
                pass
            await asyncio.sleep(self.stream_interval_s)

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(fn, req):
            return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req.FromString,
                                                       response_serializer=lambda m: m.SerializeToString())
        return grpc.method_handlers_generic_handler(SERVICE, {
            "IsActive": unary(self.IsActive, pb.ScaledObjectRef),
            "GetMetricSpec": unary(self.GetMetricSpec, pb.ScaledObjectRef),
            "GetMetrics": unary(self.GetMetrics, pb.GetMetricsRequest),
            "StreamIsActive": grpc.unary_stream_rpc_method_handler(
                self.StreamIsActive, request_deserializer=pb.ScaledObjectRef.FromString,
                response_serializer=lambda m: m.SerializeToString()),
        })


class ExternalScalerClient:
    """A small client of the same protocol (tests, debugging)."""

    def __init__(self, channel: grpc.Channel) -> None:
        def unary(name, req, resp):
            return channel.unary_unary(f"/{SERVICE}/{name}", request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString)
        self.IsActive = unary("IsActive", pb.ScaledObjectRef, pb.IsActiveResponse)
        self.GetMetricSpec = unary("GetMetricSpec", pb.ScaledObjectRef, pb.GetMetricSpecResponse)
        self.GetMetrics = unary("GetMetrics", pb.GetMetricsRequest, pb.GetMetricsResponse)
        self.StreamIsActive = channel.unary_stream(
            f"/{SERVICE}/StreamIsActive", request_serializer=pb.ScaledObjectRef.SerializeToString,
            response_deserializer=pb.IsActiveResponse.FromString)
