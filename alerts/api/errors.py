"""The one place AlertsError becomes a gRPC status.

``ErrorInterceptor`` wraps every handler (unary and streaming). An
``AlertsError`` is sent as a ``google.rpc.Status`` carrying ``ErrorInfo``
(reason, domain ``alerts.v1``, metadata), ``BadRequest`` field violations and,
for RESOURCE_EXHAUSTED, ``RetryInfo``. Anything else is logged and answered
INTERNAL without leaking its text.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from alerts.errors import AlertsError, ResourceExhaustedError

DOMAIN = "alerts.v1"
log = structlog.get_logger("alerts.api")


def to_status(err: AlertsError) -> status_pb2.Status:
    details: list[Any] = [error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN,
                                                      metadata=err.metadata)]
    if err.violations:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in err.violations
        ]))
    if isinstance(err, ResourceExhaustedError):
        delay = max(err.retry_after_s, 0.0)
        seconds = math.floor(delay)
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=seconds, nanos=int((delay - seconds) * 1e9))))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return status_pb2.Status(code=getattr(code_pb2, err.code), message=err.message,
                             details=packed)


async def abort(context: grpc.aio.ServicerContext, err: AlertsError) -> None:
    await context.abort_with_status(rpc_status.to_status(to_status(err)))


async def _internal(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    log.error("unhandled error", method=method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps AlertsError (and stray exceptions) to statuses for every kind of handler."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails],
                               Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler


def _wrap_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except AlertsError as err:
            await abort(context, err)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            await _internal(context, exc, method)
    return wrapper


def _wrap_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        # a handler that writes with context.write (grpc's health Watch) is a coroutine
        return _wrap_unary(behavior, method)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except AlertsError as err:
            await abort(context, err)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as exc:  # noqa: BLE001
            await _internal(context, exc, method)
    return wrapper
