"""Every Lua script callscreen runs, loaded once, each with its SHA1 for ``EVALSHA``.

The clients run them: the call path's lean client (:meth:`LeanRedis.evalsha
<callscreen.callpath.leanredis.LeanRedis.evalsha>`) and the admin side's redis-py
(:func:`callscreen.services.store.run_script`), both by SHA1 with one ``SCRIPT LOAD``
when Redis does not know it yet.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1, for ``EVALSHA``."""

    source: str
    sha1: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha1", digest)


def load(name: str) -> Script:
    """The script ``NAME.lua`` of this package."""
    return Script(resources.files(__package__).joinpath(f"{name}.lua").read_text())


ENTRIES = load("entries")
IMPORT = load("import")
LOOKUP = load("lookup")
LOGWRITE = load("logwrite")
OPTOUT = load("optout")
OUTCOME = load("outcome")
REPORT_FATES = load("reportfates")

ALL = {
    "entries": ENTRIES,
    "import": IMPORT,
    "lookup": LOOKUP,
    "logwrite": LOGWRITE,
    "optout": OPTOUT,
    "outcome": OUTCOME,
    "reportfates": REPORT_FATES,
}
