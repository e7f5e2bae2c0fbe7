"""National do-not-call registries: the US National Do Not Call Registry's files, loaded
into a registry list kept as one bit per possible number.

A registry list is a block list (outbound, global by default) flagged ``registry`` in
its hash. It holds no entries: for each exchange (US: NPA-NXX, the first six digits of
the ten) a string of 10,000 bits, ``{cs}:reg:L:NPANXX``, bit *n* set when the number
ending in the four digits *n* is listed. At the registry's density (7-8 % of the numbers
of the exchanges it covers) that is about 1.7 bytes a listed number. The lookup script
reads the bit in the same round trip as the lists (``lookup.lua``); an allow entry of the
company's own lists overrides a listing, never the company's own blocks
(:mod:`callscreen.callpath.precedence`). Other commands refuse to change a registry
list (:func:`~callscreen.services.table.refuse_registry`); a listed number carries the
registry and the file's date (the batch of the last load), not a reason of its own.

File formats (the registry's own; a header line is skipped, blank lines too):

- **full files**, by area code: one number a line, ten digits (``2025550145``) or area
  code and number in two comma-separated columns (``202,5550145``). Loading a full file
  **replaces** the registry's numbers of every area code the file holds (numbers of
  those area codes missing from the file are no longer listed); other area codes stay.
- **change files**, the same shape with a third column saying addition or deletion
  (``A``/``D``, ``add``/``delete``), or a first line that says it for the whole file
  (``A``, ``D``, ``add``, ``delete``, ``additions``, ``deletions``).

Numbers are taken as the registry gives them (canonical ten digits, no parsing per
row); a line that is not one (a wrong length, a letter, an area code or exchange
starting with 0 or 1) is counted as rejected, the first few are shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from callscreen.core.errors import Conflict, InvalidInput, Refused
from callscreen.core.model import Action, Direction, Scope
from callscreen.services import audit, store
from callscreen.services.bulk import Bulk
from callscreen.services.context import Context
from callscreen.services.rules import record
from callscreen.services.table import ListInfo

REGISTRIES = {"us": "US National Do Not Call Registry"}
DEFAULT_LIST = {"us": "us-dnc"}
EXCHANGE_BYTES = 1250  # 10,000 numbers a US exchange, one bit each
PIPELINE_CHUNK = 2000
SHOWN_REJECTS = 5
_ADD = {b"a", b"add", b"addition", b"additions"}
_DELETE = {b"d", b"delete", b"del", b"deletion", b"deletions"}


@dataclass(slots=True)
class FileResult:
    """What one registry file did."""

    path: str
    kind: str  # "full" or "changes"
    lines: int = 0  # numbers read (rejected ones not included)
    listed: int = 0  # full: numbers of its area codes listed after the load
    added: int = 0  # numbers newly listed
    removed: int = 0  # numbers no longer listed
    rejected: int = 0
    rejects: list[str] = field(default_factory=list)
    area_codes: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "kind": self.kind,
            "numbers": self.lines,
            "listed": self.listed,
            "added": self.added,
            "removed": self.removed,
            "rejected": self.rejected,
            "rejects": list(self.rejects),
            "area_codes": self.area_codes,
            "seconds": round(self.seconds, 3),
            "numbers_per_second": round(self.rate),
        }


# -- parsing (pure) ------------------------------------------------------------------------------


def _number(line: bytes) -> tuple[bytes, bytes]:
    """``(ten digits, third column)`` of a line (digits may be invalid: checked later)."""
    if b"," not in line:
        return line, b""
    parts = [part.strip() for part in line.split(b",")]
    if len(parts[0]) == 3:  # area code, number[, change]
        return parts[0] + parts[1], parts[2].lower() if len(parts) > 2 else b""
    return parts[0], parts[1].lower()  # ten digits, change


def _valid(digits: bytes) -> bool:
    return (
        len(digits) == 10
        and digits.isdigit()
        and digits[0] not in b"01"  # area code: NXX, N = 2-9
        and digits[3] not in b"01"  # exchange: NXX
    )


def read_full(data: bytes, result: FileResult) -> dict[bytes, bytearray]:
    """The bitmaps of a full file: exchange (six digits) -> 1,250 bytes."""
    maps: dict[bytes, bytearray] = {}
    first = True
    for raw in data.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        digits = line if len(line) == 10 else _number(line)[0]
        if not _valid(digits):
            if first and not any(ch in b"0123456789" for ch in line[:3]):
                first = False
                continue  # a header line
            _reject(result, line)
            continue
        first = False
        exchange = digits[:6]
        n = int(digits[6:])
        bits = maps.get(exchange)
        if bits is None:
            bits = maps[exchange] = bytearray(EXCHANGE_BYTES)
        bits[n >> 3] |= 0x80 >> (n & 7)  # Redis's bit order: GETBIT n
        result.lines += 1
    return maps


def read_changes(data: bytes, result: FileResult) -> list[tuple[bytes, bool]]:
    """The changes of a change file: ``(ten digits, added)`` in file order."""
    changes: list[tuple[bytes, bool]] = []
    marker: bool | None = None
    first = True
    for raw in data.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        if first:
            first = False
            word = line.lower()
            if word in _ADD or word in _DELETE:
                marker = word in _ADD
                continue
        digits, op = _number(line)
        if not _valid(digits):
            if result.lines == 0 and result.rejected == 0 and not line[:1].isdigit():
                continue  # a header line
            _reject(result, line)
            continue
        if op:
            if op not in _ADD and op not in _DELETE:
                _reject(result, line)
                continue
            added = op in _ADD
        elif marker is not None:
            added = marker
        else:
            _reject(result, line)  # a change must say what it is
            continue
        changes.append((digits, added))
        result.lines += 1
    return changes


def _reject(result: FileResult, line: bytes) -> None:
    result.rejected += 1
    if len(result.rejects) < SHOWN_REJECTS:
        result.rejects.append(line[:40].decode(errors="replace"))


def _raw(value: Any) -> bytes:
    """A bitmap read back (``GET`` is sent undecoded: see :func:`_run`)."""
    return value if isinstance(value, bytes) else b""


# -- the service ---------------------------------------------------------------------------------


class RegistryService:
    """Loads and updates a registry list (``callscreen registry``), with the context's
    actor and clock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def registry_list(self, registry: str, name: str | None = None) -> ListInfo:
        """The registry list (created on first use: block, outbound, global)."""
        ctx = self.ctx
        registry = registry.lower()
        if registry not in REGISTRIES:
            known = ", ".join(sorted(REGISTRIES))
            raise InvalidInput(f"unknown registry {registry!r} (known: {known})")
        name = name or DEFAULT_LIST[registry]
        table = ctx.table
        if not await store.wait(table.r.hexists(table.keys.lists, name)):
            try:
                info = await table.create_list(
                    name,
                    Action.BLOCK,
                    Direction.OUTBOUND,
                    Scope.GLOBAL,
                    REGISTRIES[registry],
                    ctx.actor.name,
                    registry=registry,
                )
            except Conflict:  # made meanwhile by another load: checked below
                pass
            else:
                detail = f"{REGISTRIES[registry]}: block, outbound, global"
                await record(ctx, info.id, "create", list_name=name, detail=detail)
                await record(ctx, None, "create", list_name=name, detail=detail)
                return info
        info = await table.get_list(name)
        if info.registry != registry:
            raise Refused(f"list {name!r} is not the {registry.upper()} registry's list")
        return info

    async def load(
        self,
        registry: str,
        paths: Sequence[str],
        *,
        list_name: str | None = None,
        file_date: date | None = None,
    ) -> list[FileResult]:
        """Load full files (each replaces the numbers of its area codes)."""
        return [await self._apply(registry, path, "full", list_name, file_date) for path in paths]

    async def update(
        self,
        registry: str,
        paths: Sequence[str],
        *,
        list_name: str | None = None,
        file_date: date | None = None,
    ) -> list[FileResult]:
        """Apply change files (additions and deletions), in order."""
        return [
            await self._apply(registry, path, "changes", list_name, file_date) for path in paths
        ]

    async def _apply(
        self,
        registry: str,
        path: str,
        kind: str,
        list_name: str | None,
        file_date: date | None,
    ) -> FileResult:
        ctx = self.ctx
        info = await self.registry_list(registry, list_name)
        source = Path(path)
        try:
            data = await asyncio.to_thread(source.read_bytes)
            mtime = source.stat().st_mtime
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
        day = file_date or datetime.fromtimestamp(mtime, UTC).date()
        name = REGISTRIES[info.registry]
        result = FileResult(path=source.name, kind=kind)
        started = ctx.clock()
        batch = await ctx.table.new_batch(
            "registry", f"{name}, file of {day.isoformat()}", source.name, ctx.actor.name
        )

        def work() -> None:
            bulk = Bulk(ctx.settings, clock=ctx.clock)
            try:
                if kind == "full":
                    _write_full(bulk, info, read_full(data, result), result)
                else:
                    _write_changes(bulk, info, read_changes(data, result), result)
            finally:
                bulk.close()

        await asyncio.to_thread(work)
        delta = result.added - result.removed
        table = ctx.table
        pipe = table.r.pipeline(transaction=True)
        pipe.hset(table.keys.list(info.id), "rbatch", str(batch.id))
        table.reindex(pipe)  # the lookup reports the listings with the new batch
        if delta:
            pipe.hincrby(table.keys.counts(info.id), "a", delta)
        await store.wait(pipe.execute())
        result.seconds = max(0.0, ctx.clock() - started)
        await audit.record(
            table,
            info.id,
            f"registry-{'load' if kind == 'full' else 'update'}",
            by=ctx.actor.name,
            via=ctx.actor.via,
            list_name=info.name,
            reason=name,
            count=result.added + result.removed,
            batch=batch.id,
            detail=(
                f"{kind} file {source.name} of {day.isoformat()}: {result.lines} numbers, "
                f"+{result.added} -{result.removed}, {result.rejected} rejected"
            ),
        )
        return result


# -- the bitmaps' writes (a worker thread, synchronous connection) -------------------------------


def _write_full(
    bulk: Bulk, info: ListInfo, maps: dict[bytes, bytearray], result: FileResult
) -> None:
    """Each area code of the file: its exchanges' bitmaps replaced, the others of the
    area code dropped; the counts from the old and new bitmaps."""
    keys = bulk.keys
    area_codes = sorted({exchange[:3] for exchange in maps})
    result.area_codes = len(area_codes)
    index = keys.registry_index(info.id)
    for area in area_codes:
        names = [area.decode() + f"{nxx:03d}" for nxx in range(200, 1000)]
        (counts,) = _run(bulk, [("HMGET", index, *names)])
        # the old bitmaps of the file's exchanges that held numbers (exact adds and
        # removes); the others of the area code are dropped
        present = [x for x, n in zip(names, counts, strict=True) if n and x.encode() in maps]
        old = dict(
            zip(
                present,
                _run(bulk, [("GET", keys.registry(info.id, x)) for x in present]),
                strict=True,
            )
        )
        commands: list[tuple[Any, ...]] = []
        listed: dict[str, int] = {}
        gone: list[str] = []
        for exchange, count in zip(names, counts, strict=True):
            bits = maps.get(exchange.encode())
            key = keys.registry(info.id, exchange)
            if bits is None:
                if count:
                    commands.append(("DEL", key))
                    gone.append(exchange)
                    result.removed += int(count)
                continue
            new = int.from_bytes(bits, "big")
            was = int.from_bytes(_raw(old.get(exchange)).ljust(EXCHANGE_BYTES, b"\0"), "big")
            result.added += (new & ~was).bit_count()
            result.removed += (was & ~new).bit_count()
            listed[exchange] = new.bit_count()
            commands.append(("SET", key, bytes(bits)))
        result.listed += sum(listed.values())
        if listed:
            commands.append(("HSET", index, *(v for x, n in listed.items() for v in (x, n))))
        if gone:
            commands.append(("HDEL", index, *gone))
        _run(bulk, commands)


def _write_changes(
    bulk: Bulk, info: ListInfo, changes: Iterable[tuple[bytes, bool]], result: FileResult
) -> None:
    keys = bulk.keys
    listed = list(changes)
    commands = [
        ("SETBIT", keys.registry(info.id, digits[:6].decode()), int(digits[6:]), int(added))
        for digits, added in listed
    ]
    # SETBIT answers the old bit: the counts stay exact whatever the file repeats
    delta: dict[str, int] = {}
    for (digits, added), old in zip(listed, _run(bulk, commands), strict=True):
        exchange = digits[:6].decode()
        if added and not old:
            result.added += 1
            delta[exchange] = delta.get(exchange, 0) + 1
        elif not added and old:
            result.removed += 1
            delta[exchange] = delta.get(exchange, 0) - 1
    index = keys.registry_index(info.id)
    _run(bulk, [("HINCRBY", index, x, n) for x, n in delta.items() if n])


def _run(bulk: Bulk, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``commands`` pipelined, :data:`PIPELINE_CHUNK` at a time; their answers."""
    out: list[Any] = []
    r = bulk.r
    for start in range(0, len(commands), PIPELINE_CHUNK):

        def run(
            chunk: Sequence[tuple[Any, ...]] = commands[start : start + PIPELINE_CHUNK],
        ) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for command in chunk:
                if command[0] == "GET":  # a bitmap: bytes, never decoded as text
                    pipe.execute_command(*command, NEVER_DECODE=True)
                else:
                    pipe.execute_command(*command)
            answers: list[Any] = pipe.execute()
            return answers

        out.extend(store.call(run))
    return out
