"""FastAGI: the wire format (:mod:`~callscreen.agi.protocol`, pure), the asyncio
server (:mod:`~callscreen.agi.server`) and the classic process-per-call entry point
(:mod:`~callscreen.agi.classic`)."""

from callscreen.agi.protocol import (
    AgiEnv,
    AgiSession,
    Reply,
    derive_env,
    mset_command,
    quote_agi,
    screen_request,
)

__all__ = [
    "AgiEnv",
    "AgiSession",
    "Reply",
    "derive_env",
    "mset_command",
    "quote_agi",
    "screen_request",
]
