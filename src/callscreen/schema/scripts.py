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

from callscreen.schema.keys import FRAGMENTS, NUMBERS


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1, for ``EVALSHA``."""

    source: str
    sha1: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha1", digest)


def prelude() -> str:
    """The Lua lines put before every script: the key fragments and sizes of
    :mod:`callscreen.schema.keys`, as locals (``K_LIST``, ``BATCH_BUCKET``...). Loaded
    once with the script, so a call's ``EVALSHA`` stays as small as before."""
    lines = ["-- generated from callscreen.schema.keys: the layout's one source"]
    lines += [f"local K_{name} = '{fragment}'" for name, fragment in FRAGMENTS.items()]
    lines += [f"local {name} = {value}" for name, value in NUMBERS.items()]
    return "\n".join(lines) + "\n"


def body(name: str) -> str:
    """The text of ``NAME.lua`` as written (without the prelude)."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text()


def load(name: str, *, flags: bool = True) -> Script:
    """The script ``NAME.lua`` of this package with the :func:`prelude` put in front of
    its body, and the modules it uses (:data:`USES`) between them. A first line
    ``#!lua flags=...`` (script flags, Redis >= 7) stays first, as Redis reads it only
    there; ``flags=False`` leaves it out, for a Redis that knows no script flags (6: such
    a line is a syntax error there)."""
    text = body(name)
    head = prelude() + included(name)
    if not text.startswith("#!"):
        return Script(head + text)
    shebang, rest = text.split("\n", 1)
    return Script((shebang + "\n" if flags else "") + head + rest)


#: Lua libraries (``NAME.lua`` files of local functions, no script by themselves):
#: ``record.lua`` (an entry record's fields, its trail of transitions) and ``lookuplib.lua``
#: (the lookup index) ...
LIBRARIES = ("record", "lookuplib")
#: ... and the scripts that use them: the two writers of entry records, and every script
#: that changes what the lookup index summarizes (it keeps the index in the same call).
USES: dict[str, tuple[str, ...]] = {
    "entries": ("record", "lookuplib"),
    "import": ("record", "lookuplib"),
    "optout": ("lookuplib",),
    "lookupindex": ("lookuplib",),
}


def included(name: str) -> str:
    """The text of the libraries put before script ``name``'s body (see :data:`USES`)."""
    return "".join(body(lib) for lib in USES.get(name, ()))


ENTRIES = load("entries")
IMPORT = load("import")
LOOKUP = load("lookup")  # read-only (#!lua flags=no-writes): EVALSHA_RO, on replicas too
LOOKUP_PLAIN = load("lookup", flags=False)  # the same for Redis 6
LOOKUP_INDEX = load("lookupindex")  # rebuilds the lookup index: run in each list change's MULTI
LOGWRITE = load("logwrite")
NUMBERLOG = load("numberlog")
OPTOUT = load("optout")
OUTCOME = load("outcome")
REPORT_MARKS = load("reportmarks")
REPORT_ENTRIES = load("reportentries")
SEARCH = load("search")  # read only; plain, for Redis 6 as well

ALL = {
    "entries": ENTRIES,
    "import": IMPORT,
    "lookup": LOOKUP,
    "lookupindex": LOOKUP_INDEX,
    "logwrite": LOGWRITE,
    "numberlog": NUMBERLOG,
    "optout": OPTOUT,
    "outcome": OUTCOME,
    "reportmarks": REPORT_MARKS,
    "reportentries": REPORT_ENTRIES,
    "search": SEARCH,
}
