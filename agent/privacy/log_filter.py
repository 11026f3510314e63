"""A logging filter that lets no personal data into a log line, even by accident.

Installed on every handler of the root logger at start-up. It redacts the
formatted message and any exception text (exception messages can carry a
webhook's payload or a caller's words), and replaces arguments marked as
caller text with their length: the agent logs events, not what was said.
"""

from __future__ import annotations

import logging

from agent.privacy.redact import redact


class CallerText(str):
    """A transcript or other caller-provided string: never logged, only its length."""


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            if any(isinstance(a, CallerText) for a in args):
                args = tuple(f"[caller text, {len(a)} chars]" if isinstance(a, CallerText) else a for a in args)
                record.args = args if isinstance(record.args, tuple) else args[0]
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of `logger` (the root logger by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
