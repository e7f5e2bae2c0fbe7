"""The Redis layout: every key name (:mod:`.keys`), stored record formats (the
attempt-log record in :mod:`.attempts`; list entries in :mod:`callscreen.core.model`)
and every Lua script (``*.lua`` beside this file).

May import :mod:`callscreen.core` only; nothing here opens a connection.
"""
