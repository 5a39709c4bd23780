"""structlog JSON logs, one line per event on stdout, the same shape in every service."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from deja.telemetry import current_ids

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _add_trace_ids(_logger, _method, event: dict) -> dict:
    """trace_id / span_id of the current span, as Jaeger shows them, so a log line finds its trace."""
    ids = current_ids()
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event


def configure_logging(service: str, level: str = "info") -> None:
    """JSON lines with timestamp, level and service; orjson keeps this off the hot path's budget."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level.lower(), logging.INFO)),
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries that log through the standard library (uvicorn, grpc) end up as plain lines
    # on stderr; keep them to warnings so they don't drown the JSON stream.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
