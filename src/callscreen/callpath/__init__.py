"""The call path: what runs while a caller waits.

The FastAGI wire format as pure code over bytes (:mod:`.protocol`), the asyncio server
(:mod:`.server`), the classic process-per-call entry point (:mod:`.classic`), the
screener (:mod:`.screener`) with its pure precedence rules (:mod:`.precedence`) and the
answer it gives (:mod:`.decision`), the lean Redis client (:mod:`.leanredis` over
:mod:`.resp`) and the plain counters the server keeps (:mod:`.stats`).

May import :mod:`callscreen.core` and :mod:`callscreen.schema` only: never the admin
services, the Asterisk side, the gateway, redis-py, panoramisk, prometheus_client,
typer or rich (``tests/test_layout.py`` checks it in a fresh interpreter).
"""
