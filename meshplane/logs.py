"""Logging setup for every meshplane command: structlog events rendered as ``key=value`` lines (or JSON) on stderr.

Everything goes through the standard library's logging, so records from grpc, aiohttp and other libraries get
the same format and the same level filter as ours. Call ``configure_logging`` once, early in ``main``; the CLI adds
``--log-json`` and ``--log-level`` with ``add_logging_arguments`` and passes the parsed values on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor

__all__ = ["LOG_LEVELS", "add_logging_arguments", "configure_logging", "configure_logging_from_args"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    *, json: bool = False, level: str = "info", stream: TextIO | None = None, cache_loggers: bool = True
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr): ``key=value`` lines, or one JSON object per line.

    ``cache_loggers=False`` keeps loggers reconfigurable (tests); caching is faster for a long-running process."""
    if level not in LOG_LEVELS:
        raise ValueError(f"configure_logging: level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "logger", "event"], drop_missing=True
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache_loggers,
    )


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line instead of key=value")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="lowest level logged (default: info)")


def configure_logging_from_args(args: argparse.Namespace) -> None:
    configure_logging(json=bool(args.log_json), level=str(args.log_level))
