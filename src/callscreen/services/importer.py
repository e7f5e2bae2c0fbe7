"""Bulk import of entries from CSV: streaming, constant memory, about file speed.

What a file may look like
-------------------------
- UTF-8, with or without a BOM; lines end with LF or CRLF; blank lines are skipped.
- ``,`` ``;`` or tab separated, sniffed from the first line (the most frequent of the
  three; a single column needs none). Cells may be quoted as CSV does (``"a, b"``).
- A header is recognised when one of its cells names a column (any case, spaces or
  ``-`` for ``_``): ``number`` (or ``phone``, ``phone_number``, ``msisdn``, ``e164``,
  ``entry``), ``reason``, ``external_id`` (or ``extid``, ``ext_id``), ``expires`` (or
  ``expiry``, ``expires_at``), and every column of an export
  (:data:`callscreen.services.exporter.EXPORT_COLUMNS`). Other columns are ignored (and said so).
  A single cell without any digit (``Phone numbers``) is taken as the header of a
  one-column file. Without a header, the number is the first column and the others are
  ignored.
- ``number`` is anything :func:`callscreen.core.numbers.parse_entry` reads with the default
  region: ``+33 1 23 45 67 89``, ``01-23-45-67-89``, ``tel:…``, or a prefix ``+33*``.
- ``expires``: an ISO 8601 date or date-time, as ``add --expires`` takes it
  (:func:`callscreen.core.times.parse_expiry`: no zone means UTC, a bare date keeps the entry
  through that day); empty = none given. A duration (``30d``) is refused in a file: it
  would give another expiry at each import.
- Free text is taken as written (not stripped): one leading ``'`` that an export put
  before ``=``/``+``/``-``/``@``/tab/CR (formula neutralisation) is taken off
  (:func:`callscreen.services.exporter.unprotect`). As with ``add``, a reason has at most 500
  characters and an external id 64, without control characters.

What the import does to the list
--------------------------------
- New entries are *pending* (not enforced) unless ``approve`` is ACTIVE or PERMANENT.
  An existing entry is never demoted (pending < active < permanent). A permanent entry
  is frozen: a row for it changes nothing (its reason, expiry and external id stay) and
  is counted as ``permanent_unchanged``.
- A cell left empty (or a column the file does not have) keeps what the entry has: a row
  without reason keeps the entry's reason (a new entry gets ``options.reason``, if given,
  else none), an empty external id or expiry keeps the stored one.
- An entry that would not change (same status, reason text, external id and expiry) is
  left as it is, batch included: importing the same file again changes nothing.
- Duplicates within the file: the first row of an entry wins; later ones are counted
  as ``duplicates`` (``+33123456789`` and ``01 23 45 67 89`` from FR are one entry).
- Soft-deleted entries are left deleted (counted as ``deleted_kept``) unless
  ``restore_deleted``: then they come back with the import's status.
- ``replace``: afterwards, every pending or active entry of the list that the file did
  not name is soft-removed, the removal's reason naming the file; permanent entries
  are kept (counted). The sweep is not done if any row was bad (a typo must not remove
  an entry): the summary says so. Nor, unless ``allow_empty``, when the file names no
  entry (an empty file, or every row bad): the list would be emptied. Nor when it
  would remove more than ``max_remove`` (a fraction, 0.5 by default) of the list's
  live (pending or active) entries. A refused sweep removes nothing, says why in
  ``replace_refused`` (the file's good rows are imported all the same), and the front
  end exits with the refusal's code.
- ``strict``: the whole file is checked first; if any row is bad nothing is written.
  (Standard input is spooled to a temporary file for the second pass.) It is about
  *bad rows* only: it is not a transaction. A Redis failure in the middle of any
  import leaves the entries written so far in place (active, if the import approves);
  the error then says how many were written, and that running the same import again
  finishes it (imports are idempotent: what is already there is counted unchanged).
- An export file (:mod:`callscreen.services.exporter`) re-imports losslessly into a new list:
  reason, source, external id, updated by/at (the entry's batch), created by/at (its
  creation batch, for an entry the import creates; an entry already in the list keeps
  its own creation), expiry, and with ``keep_status`` its status and removal (by, at,
  reason). Without ``keep_status`` the
  import's own status applies and rows marked ``deleted`` are skipped (counted with
  ``deleted_kept``); ``keep_status`` never demotes either, and a ``deleted`` row only
  recreates a missing entry, as removed. (Statuses are kept only on request: an
  import is otherwise reviewed.)
- Approving permanently a prefix that is a whole country code (``+33*``, ``+1*``) by
  import is refused row by row unless ``confirm_broad`` (``--confirm-country``): it
  cannot be undone.
- One audit event records the import (:mod:`callscreen.services.audit`), and one the entries a
  ``replace`` removed.

How it is fast
--------------
The file is read in blocks of about :data:`BLOCK` bytes, cut at line ends (never inside
a quoted cell). Blocks are parsed (:func:`parse_entry_fast`, bucket and field computed)
in a worker process when the input is large, while this process writes the previous
block: each script call (``import.lua``) merges :data:`ROWS_PER_CALL` rows in Redis,
keeping the per-status counts and the expiry index exact, and creating one batch per
distinct reason (and source/by/at) of the import, interned in a temporary Redis hash.
Memory stays flat in the file size: a few blocks are in flight at any time, and
what must be remembered across the whole file (entries seen, batches made) lives in
temporary Redis keys under ``{cs}:imp:TOKEN`` (:meth:`callscreen.schema.keys.Keys.import_temp`)
that are deleted at the end (the next import cleans them up should this one die: each
import marks itself as running in ``{cs}:imports`` every :data:`HEARTBEAT` seconds).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import pickle
import queue
import re
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import IO, Any, Protocol, TextIO, TypeVar

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from callscreen.core import times
from callscreen.core.errors import CallscreenError, InvalidInput, InvalidNumber, StoreError
from callscreen.core.model import Status
from callscreen.core.numbers import parse_entry_fast
from callscreen.core.text import free_text
from callscreen.schema.scripts import IMPORT
from callscreen.services import store
from callscreen.services.bulk import Bulk
from callscreen.services.exporter import EXPORT_COLUMNS, protect, unprotect
from callscreen.services.table import Batch, ListInfo, refuse_registry

BLOCK = 128 * 1024  # bytes a parse job reads (about 10k rows of E.164 numbers)
MAX_BLOCK = 16 * 1024 * 1024  # a quoted cell left open cannot hold more than this
ROWS_PER_CALL = 500  # rows per script call: ~2 ms of Redis, the longest a lookup waits
MAX_HEADER = 1024 * 1024
SHOWN_ERRORS = 20  # bad rows kept in the summary (all go to the errors file)
HEARTBEAT = 30.0  # seconds between two "still running" marks of an import
STALE_AFTER = 3600.0  # an import silent this long died: the next one cleans its keys
PARALLEL_FROM = 4 * 1024 * 1024  # inputs this large (or stdin) are parsed in a worker
IN_FLIGHT = 3  # parse jobs queued per worker: a few blocks in memory, never the file
SWEEP_ENTRIES = 4000  # entries a --replace sweep call looks at (about)
MAX_REASON = 500  # as services.MAX_REASON (``add --reason``)
MAX_EXTERNAL_ID = 64  # as services.MAX_EXTERNAL_ID

_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)
_STATUS_CODE = {
    "pending": "p",
    "active": "a",
    "expired": "a",  # an active entry whose expiry (a column of its own) has passed
    "permanent": "P",
    "deleted": "d",
}
_APPROVE_CODE = {Status.PENDING: "p", Status.ACTIVE: "a", Status.PERMANENT: "P"}

# header cell (normalised) -> column
_ALIASES = {name: name for name in EXPORT_COLUMNS} | {
    "phone": "number",
    "phone_number": "number",
    "phonenumber": "number",
    "msisdn": "number",
    "e164": "number",
    "entry": "number",
    "extid": "external_id",
    "ext_id": "external_id",
    "externalid": "external_id",
    "expiry": "expires",
    "expires_at": "expires",
}
_NORMALISE = re.compile(r"[\s\-]+")


# -- what a file looks like ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """How a file's rows read: separator, whether the first line is a header, which
    column holds what (``columns``: column name -> index), and ignored header cells."""

    delimiter: str
    header: bool
    columns: dict[str, int]
    ignored: tuple[str, ...] = ()


def _header_name(cell: str) -> str:
    return _NORMALISE.sub("_", cell.strip().lower())


def sniff(first_line: str) -> Layout:
    """The layout of a file from its first line (BOM and line end removed)."""
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    delimiter = max(counts, key=lambda sep: counts[sep])
    if counts[delimiter] == 0:
        delimiter = ","
    cells = next(csv.reader([first_line], delimiter=delimiter), [])
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = _ALIASES.get(_header_name(cell))
        if name is not None and name not in columns:
            columns[name] = index
        elif cell.strip():
            ignored.append(cell.strip())
    if columns:
        if "number" not in columns:
            raise InvalidInput(
                "the header names no number column (expected one of: number, phone, "
                f"msisdn, e164); it has: {', '.join(cells)}"
            )
        return Layout(delimiter, True, columns, tuple(ignored))
    if len(cells) == 1 and cells[0].strip() and not any(ch.isdigit() for ch in cells[0]):
        return Layout(delimiter, True, {"number": 0})
    return Layout(delimiter, False, {"number": 0})


def parse_time(text: str, what: str) -> float:
    """Epoch seconds (microseconds kept) from an ISO 8601 date-time (no zone = UTC;
    :func:`callscreen.core.times.parse_datetime`)."""
    return times.parse_datetime(text, what).timestamp()


def parse_file_expiry(text: str) -> int:
    """The expiry of a row: a date or date-time as ``add --expires`` reads it, not a
    duration (it would move at each import)."""
    if times.duration(text) is not None:
        raise InvalidInput(
            f"expires {text.strip()!r} is a duration: a file needs a date (e.g. 2026-01-31), "
            "or the same file would give another expiry at each import"
        )
    return times.parse_expiry(text, 0.0)


_check_text = free_text


# -- parsing blocks (in a worker process when the input is large) --------------------


@dataclass(frozen=True, slots=True)
class ParseConfig:
    """All a parse job needs to know; picklable, sent once to each worker."""

    layout: Layout
    region: str
    buckets: int
    default_status: str  # p, a or P
    default_reason: str | None  # None: a row without reason keeps the entry's
    source: str
    by: str
    at: str  # repr of the import's epoch time, a JSON number
    keep_status: bool = False
    confirm_broad: bool = False
    validate_only: bool = False
    rows_per_call: int = ROWS_PER_CALL

    @property
    def arity(self) -> int:
        """Fields per row sent to ``import.lua``: 5 for plain rows, 8 with a status,
        a removal or a creation of their own."""
        cols = self.layout.columns
        wide = self.keep_status or "created_by" in cols or "created_at" in cols
        return 8 if wide else 5


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad row: its line number in the file, the row as written, and why."""

    line: int
    raw: str
    error: str


@dataclass(slots=True)
class Parsed:
    """One block, parsed: script calls (specs, rows) ready to send, and the bad rows."""

    nbytes: int
    good: int = 0
    deleted_rows: int = 0  # rows an export marks deleted, skipped without keep_status
    calls: list[tuple[list[str], list[str]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


class _Call:
    """The arguments of one script call being built: batch specs and rows."""

    def __init__(self) -> None:
        self.spec_index: dict[tuple[str, ...], int] = {}
        self.specs: list[str] = []
        self.rows: list[str] = []
        self.count = 0

    def spec(self, key: tuple[str, ...]) -> str:
        index = self.spec_index.get(key)
        if index is None:
            index = len(self.spec_index) + 1
            self.spec_index[key] = index
            self.specs += key
        return str(index)


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index]


def _rows(text: str, delimiter: str, columns: int) -> Iterator[tuple[int, str, list[str]]]:
    """``(line offset, raw row, cells)`` for each row of a block of whole lines."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if '"' not in text:
        for offset, line in enumerate(lines):
            if line.endswith("\r"):
                line = line[:-1]
            yield offset, line, (line.split(delimiter) if columns > 1 else [line])
        return
    consumed = 0
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter)
    for cells in reader:
        start, consumed = consumed, reader.line_num
        raw = "\n".join(line.removesuffix("\r") for line in lines[start:consumed])
        yield start, raw, cells


def parse_block(cfg: ParseConfig, start_line: int, data: bytes) -> Parsed:
    """Parse one block of whole lines starting at line ``start_line`` of the file."""
    parsed = Parsed(nbytes=len(data))
    bad_lines: set[int] = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pieces = []
        for offset, chunk in enumerate(data.split(b"\n")):
            try:
                pieces.append(chunk.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad_lines.add(offset)
                why = f"not UTF-8 text (byte {exc.start + 1} of the line)"
                raw = chunk.decode("utf-8", "replace").removesuffix("\r")
                parsed.errors.append(RowError(start_line + offset, raw, why))
                pieces.append("")
        text = "\n".join(pieces)
    layout = cfg.layout
    cols = layout.columns
    number_at = cols["number"]
    reason_at, extid_at, expires_at = (
        cols.get("reason"),
        cols.get("external_id"),
        cols.get("expires"),
    )
    kind_at, source_at = cols.get("kind"), cols.get("source")
    by_at, at_at = cols.get("updated_by"), cols.get("updated_at")
    created_at = (cols.get("created_by"), cols.get("created_at"))
    wide = cfg.arity == 8
    status_at = cols.get("status") if cfg.keep_status else None
    skip_deleted_at = None if cfg.keep_status else cols.get("status")
    removed = (cols.get("removed_reason"), cols.get("removed_by"), cols.get("removed_at"))
    width = max(cols.values()) + 1 if layout.header else 1
    buckets, region = cfg.buckets, cfg.region
    inherit = "1" if cfg.default_reason is None else "0"
    default_reason = cfg.default_reason or ""
    call = _Call()
    for offset, raw, cells in _rows(text, layout.delimiter, width):
        if bad_lines and offset in bad_lines:
            continue
        if skip_deleted_at is not None and _cell(cells, skip_deleted_at).strip() == "deleted":
            parsed.deleted_rows += 1
            continue
        number = _cell(cells, number_at)
        if not number.strip():
            if raw.strip(" \t" + layout.delimiter):
                parsed.errors.append(RowError(start_line + offset, raw, "no number"))
            continue
        try:
            key = parse_entry_fast(number, region)
            if kind_at is not None:
                kind = _cell(cells, kind_at).strip().lower()
                if kind and kind != ("prefix" if key.is_prefix else "number"):
                    raise InvalidInput(f"kind is {kind!r} but the entry is {key.display}")
            reason = unprotect(_cell(cells, reason_at))
            spec_inherit = inherit
            if reason:
                spec_inherit = "0"
                _check_text(reason, "reason", MAX_REASON)
            else:
                reason = default_reason
            extid = unprotect(_cell(cells, extid_at))
            if extid:
                _check_text(extid, "external id", MAX_EXTERNAL_ID)
            expires = _cell(cells, expires_at)
            expires = str(parse_file_expiry(expires)) if expires.strip() else ""
            source = unprotect(_cell(cells, source_at)) or cfg.source
            by = unprotect(_cell(cells, by_at)) or cfg.by
            at = _cell(cells, at_at)
            at = repr(parse_time(at, "updated_at")) if at else cfg.at
            status = ""
            if status_at is not None:
                text_status = _cell(cells, status_at).strip().lower()
                if text_status:
                    status = _STATUS_CODE.get(text_status, "")
                    if not status:
                        raise InvalidInput(
                            f"unknown status {text_status!r} (pending, active, permanent, "
                            "deleted or expired)"
                        )
            if (
                key.is_prefix
                and (status or cfg.default_status) == "P"
                and key.digits in _COUNTRY_CODES
                and not cfg.confirm_broad
            ):
                raise InvalidInput(
                    f"approving {key.display} permanently covers a whole country code and "
                    "cannot be undone; confirm it explicitly (--confirm-country)"
                )
            created = (by, at)
            if wide:
                c_by, c_at = (_cell(cells, i) for i in created_at)
                c_at = repr(parse_time(c_at, "created_at")) if c_at else at
                created = (unprotect(c_by) or by, c_at)
            removal: tuple[str, str, str, str] | None = None
            if status == "d":
                r_reason, r_by, r_at = (unprotect(_cell(cells, i)) for i in removed)
                removal_at = repr(parse_time(r_at, "removed_at")) if r_at else cfg.at
                removal = (r_reason, source, r_by or cfg.by, removal_at)
        except (InvalidNumber, InvalidInput) as exc:
            why = str(exc)
            if "\n" in raw:
                last = start_line + offset + raw.count("\n")
                why += (
                    f" (lines {start_line + offset}-{last} were read as one row: "
                    "is a quote left open?)"
                )
            parsed.errors.append(RowError(start_line + offset, raw, why))
            continue
        parsed.good += 1
        if cfg.validate_only:
            continue
        if key.is_prefix:
            loc, hfield = "p", key.digits
        else:
            value = int(key.digits)
            loc, hfield = str(value % buckets), str(value // buckets)
        spec = call.spec(("import", reason, source, by, at, spec_inherit))
        if wide:
            rspec = call.spec(("remove", *removal, "0")) if removal else ""
            cspec = call.spec(("import", reason, source, *created, spec_inherit))
            call.rows += (loc, hfield, spec, expires, extid, status, rspec, cspec)
        else:
            call.rows += (loc, hfield, spec, expires, extid)
        call.count += 1
        if call.count >= cfg.rows_per_call:
            parsed.calls.append((call.specs, call.rows))
            call = _Call()
    if call.count:
        parsed.calls.append((call.specs, call.rows))
    if bad_lines:
        parsed.errors.sort(key=lambda err: err.line)
    return parsed


# -- parse workers: `python -c` subprocesses fed over pipes -------------------------
#
# Not multiprocessing: its spawn and forkserver methods re-run the caller's __main__
# (a library cannot ask every script for a main guard), and fork is unsafe once other
# threads run (the CLI's progress bar). Messages are length-prefixed pickles; only this
# module's own processes are on either end.

_FRAME = struct.Struct(">I")
_WORKER_CODE = "from callscreen.services.importer import worker_main; worker_main()"


def _send(out: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_FRAME.pack(len(data)))
    out.write(data)
    out.flush()


def _recv(inp: IO[bytes]) -> Any:
    head = inp.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError("parse worker closed its pipe")
    size = _FRAME.unpack(head)[0]
    data = inp.read(size)
    if len(data) < size:
        raise EOFError("parse worker closed its pipe")
    return pickle.loads(data)


def worker_main() -> None:
    """A parse worker: a :class:`ParseConfig`, then ``(start line, bytes)`` jobs on
    stdin, each answered by a :class:`Parsed` on stdout, until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the importer decides when to stop
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the pipe
    inp = sys.stdin.buffer
    cfg = _recv(inp)
    while (job := _recv(inp)) is not None:
        _send(out, parse_block(cfg, *job))


class _Workers:
    """Parse worker processes, fed round robin by a thread, at most ``IN_FLIGHT`` jobs
    each ahead of the reader."""

    def __init__(self, cfg: ParseConfig, count: int) -> None:
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.procs: list[subprocess.Popen[bytes]] = []
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            self.procs.append(proc)
            assert proc.stdin is not None
            _send(proc.stdin, cfg)
        self.slots = threading.Semaphore(IN_FLIGHT * count)
        self.events: queue.Queue[object] = queue.Queue()
        self.stopping = threading.Event()

    def _feed(self, blocks: Iterator[tuple[int, bytes]]) -> None:
        try:
            for n, job in enumerate(blocks):
                while not self.slots.acquire(timeout=0.2):
                    if self.stopping.is_set():
                        return
                if self.stopping.is_set():
                    return
                stdin = self.procs[n % len(self.procs)].stdin
                assert stdin is not None
                _send(stdin, job)
                self.events.put(n)
            for proc in self.procs:
                assert proc.stdin is not None
                _send(proc.stdin, None)
                proc.stdin.close()
            self.events.put(None)
        except Exception as exc:  # handed to the reading thread
            self.events.put(exc)

    def run(self, blocks: Iterator[tuple[int, bytes]]) -> Iterator[Parsed]:
        feeder = threading.Thread(target=self._feed, args=(blocks,), daemon=True)
        feeder.start()
        finished = False
        try:
            while True:
                event = self.events.get()
                if event is None:
                    finished = True
                    return
                if isinstance(event, BaseException):
                    raise event
                assert isinstance(event, int)
                proc = self.procs[event % len(self.procs)]
                assert proc.stdout is not None
                try:
                    parsed: Parsed = _recv(proc.stdout)
                except EOFError:
                    raise CallscreenError(
                        f"a parse worker stopped (exit status {proc.wait()}); nothing more "
                        "was imported"
                    ) from None
                self.slots.release()
                yield parsed
        finally:
            self.stopping.set()
            for proc in self.procs:
                if not finished and proc.poll() is None:
                    proc.kill()  # stopped early: nobody will read what it parses
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            feeder.join(5)
            for proc in self.procs:
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None and not pipe.closed:
                        with contextlib.suppress(OSError):
                            pipe.close()


# -- reading -------------------------------------------------------------------------


class _Reader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


def _blocks(stream: _Reader, pending: bytes, first_line: int) -> Iterator[tuple[int, bytes]]:
    """``(start line, bytes)`` blocks of whole lines, never cut inside a quoted cell."""
    line = first_line
    buf = pending
    while True:
        data = stream.read(BLOCK)
        if not data:
            if buf:
                yield line, buf
            return
        buf += data
        cut = buf.rfind(b"\n")
        if cut < 0 and len(buf) > MAX_BLOCK:
            raise InvalidInput(
                f"line {line} is longer than {MAX_BLOCK} bytes: not a CSV of numbers"
            )
        # a cut inside quotes would split a cell: move back until the quotes balance
        while cut >= 0 and buf.count(b'"', 0, cut) % 2 and len(buf) < MAX_BLOCK:
            cut = buf.rfind(b"\n", 0, cut)
        if cut < 0:
            continue
        block, buf = buf[: cut + 1], buf[cut + 1 :]
        yield line, block
        line += block.count(b"\n")


class _Spool:
    """Reads a stream and keeps a copy of what was read (stdin under ``strict``)."""

    def __init__(self, stream: _Reader, copy: IO[bytes]) -> None:
        self.stream = stream
        self.copy = copy

    def read(self, size: int = -1, /) -> bytes:
        data = self.stream.read(size)
        self.copy.write(data)
        return data

    def readline(self, size: int = -1, /) -> bytes:
        data = self.stream.readline(size)
        self.copy.write(data)
        return data


def _parsed_blocks(
    cfg: ParseConfig, blocks: Iterator[tuple[int, bytes]], workers: int
) -> Iterator[Parsed]:
    """Parse blocks in order, in ``workers`` processes (0: here), a few in flight."""
    if workers <= 0:
        for start, data in blocks:
            yield parse_block(cfg, start, data)
        return
    yield from _Workers(cfg, workers).run(blocks)


# -- writing -------------------------------------------------------------------------


@dataclass(slots=True)
class ImportOptions:
    """How to import; see the module docstring for what each does."""

    approve: Status = Status.PENDING  # PENDING, ACTIVE or PERMANENT
    reason: str | None = None  # for rows without one (None: they keep the entry's)
    source: str | None = None  # default ``import:NAME``
    by: str = ""  # who imports (the service sets it from its actor)
    restore_deleted: bool = False
    replace: bool = False
    allow_empty: bool = False  # --replace with a file that names no entry empties the list
    max_remove: float = 0.5  # --replace removes at most this share of the live entries
    strict: bool = False
    keep_status: bool = False
    confirm_broad: bool = False
    workers: int | None = None  # parse processes; None: 1 for large input on 2+ cores
    rows_per_call: int = ROWS_PER_CALL
    shown_errors: int = SHOWN_ERRORS


@dataclass(slots=True)
class ImportSummary:
    """What an import did. ``pending`` counts the file's entries left pending, that is
    *not enforced* until approved; ``list_pending`` all the list's pending entries;
    ``enforced`` the entries the import made enforced (new, or pending, removed or
    expired before; active or permanent now): on a block list, calls to them are due
    for cancelling (:meth:`callscreen.services.transfer.TransferService.import_file`)."""

    list_name: str
    source: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    restored: int = 0
    unchanged: int = 0
    deleted_kept: int = 0
    duplicates: int = 0
    pending: int = 0
    enforced: int = 0
    permanent_unchanged: int = 0  # rows for permanent entries: frozen, not written
    errors: int = 0
    removed: int = 0
    kept_permanent: int = 0
    list_pending: int = 0
    written: bool = True
    replaced: bool = False
    notes: list[str] = field(default_factory=list)
    first_errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0
    batch: int | None = None  # the one batch the import made, if it made one
    removal: Batch | None = None  # the removal batch of --replace
    replace_refused: str = ""  # why --replace removed nothing (a guard refused)

    @property
    def changed(self) -> int:
        """Entries the import wrote (added, updated or restored)."""
        return self.added + self.updated + self.restored

    @property
    def skipped(self) -> int:
        """Rows that changed nothing: unchanged entries, permanent ones (frozen),
        deleted ones kept deleted, and duplicates."""
        return self.unchanged + self.permanent_unchanged + self.deleted_kept + self.duplicates

    def to_json(self) -> dict[str, Any]:
        hidden = ("first_errors", "batch", "removal")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        data["skipped"] = self.skipped
        data["first_errors"] = [
            {"line": e.line, "raw": e.raw, "error": e.error} for e in self.first_errors
        ]
        return data


_OUTCOMES = (
    "added",
    "updated",
    "restored",
    "unchanged",
    "deleted_kept",
    "duplicates",
    "pending",
    "enforced",
    "permanent_unchanged",
)


class _Merger:
    """Sends parsed rows to ``import.lua`` and keeps the tallies."""

    def __init__(self, table: Bulk, info: ListInfo, token: str, cfg: ParseConfig, restore: bool):
        self.table = table
        self.info = info
        keys = table.keys
        self.merge_keys = [
            keys.counts(info.id),
            keys.expiring(info.id),
            keys.batch_seq,
            keys.import_batches(token),
        ]
        self.head = [
            "merge",
            keys.base,
            str(info.id),
            token,
            cfg.default_status,
            "1" if restore else "0",
            cfg.at,
        ]
        self.token = token
        self.registry = keys.imports
        self.beat = 0.0

    def register(self) -> None:
        """Note this import as running, and clean up after imports that died."""
        now = time.time()
        stale = store.call(
            lambda: self.table.r.zrangebyscore(self.registry, "-inf", now - STALE_AFTER)
        )
        for token in stale:
            self._drop(str(token))
        store.call(lambda: self.table.r.zadd(self.registry, {self.token: now}))
        self.beat = time.monotonic()

    def heartbeat(self) -> None:
        if time.monotonic() - self.beat >= HEARTBEAT:
            store.call(lambda: self.table.r.zadd(self.registry, {self.token: time.time()}))
            self.beat = time.monotonic()

    def _drop(self, token: str) -> None:
        keys = self.table.keys
        names = [keys.import_batches(token), keys.import_seen(token, "p")]
        names += [keys.import_seen(token, bucket) for bucket in range(self.table.buckets)]
        pipe = self.table.r.pipeline(transaction=False)
        for start in range(0, len(names), 1000):
            pipe.unlink(*names[start : start + 1000])
        pipe.zrem(self.registry, token)
        store.call(pipe.execute)

    def _call(self, keys: list[str], args: list[str]) -> list[Any]:
        reply: list[Any] = store.run_script_sync(self.table.r, IMPORT, keys, args)
        return reply

    def merge(self, specs: list[str], rows: list[str], arity: int, summary: ImportSummary) -> None:
        self.heartbeat()
        head = [*self.head, str(arity), str(len(specs) // 6)]
        reply = self._call(self.merge_keys, [*head, *specs, *rows])
        for name, count in zip(_OUTCOMES, reply, strict=True):
            setattr(summary, name, getattr(summary, name) + int(count))

    def sweep(self, removal_batch: int, summary: ImportSummary) -> None:
        """Soft-remove the live entries the file did not name (permanent ones kept);
        removal batch 0: only count them (into ``summary``), write nothing."""
        if store.call(lambda: self.table.r.zscore(self.registry, self.token)) is None:
            # another import took this one for dead and dropped what it had seen
            raise StoreError(
                "the import's record of the file's entries was lost; --replace not done"
            )
        keys = [self.table.keys.counts(self.info.id), self.table.keys.expiring(self.info.id)]
        head = [
            self.table.keys.base,
            str(self.info.id),
            self.token,
            str(removal_batch),
        ]
        buckets = self.table.buckets
        stored = store.call(lambda: self.table.r.hvals(keys[0]))
        total = sum(int(n) for n in stored)
        per_call = max(1, min(1024, SWEEP_ENTRIES * buckets // max(total, 1)))
        for first in range(0, buckets, per_call):
            locs = [str(b) for b in range(first, min(first + per_call, buckets))]
            args = ["sweep", *head, *locs]
            reply = self._call(keys, args)
            summary.removed += int(reply[0])
            summary.kept_permanent += int(reply[1])
        cursor = "0"
        while True:
            args = ["sweep_p", *head, cursor, "1000"]
            reply = self._call(keys, args)
            summary.removed += int(reply[0])
            summary.kept_permanent += int(reply[1])
            cursor = str(reply[2])
            if cursor == "0":
                break

    def only_batch(self) -> int | None:
        """The batch the import made, if it made exactly one (the common case: one
        reason for the whole file), for the audit trail."""

        batches = self.table.keys.import_batches(self.token)

        def read() -> int | None:
            if self.table.r.hlen(batches) != 1:
                return None
            return int(self.table.r.hvals(batches)[0])

        return store.call(read)

    def cleanup(self) -> None:
        """Delete the import's temporary keys."""
        self._drop(self.token)


Progress = Callable[[str, int, int], None]
"""``progress(phase, bytes_read, rows_read)``; phase is ``check``, ``import`` or
``replace``."""


def _first_line(stream: _Reader) -> tuple[str, bytes]:
    """The first line (decoded, BOM and line end removed) and its raw bytes."""
    raw = stream.readline(MAX_HEADER)
    if len(raw) >= MAX_HEADER and not raw.endswith(b"\n"):
        raise InvalidInput(f"line 1 is longer than {MAX_HEADER} bytes: not a CSV of numbers")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8 text (line 1)") from None
    return text.rstrip("\r\n"), raw


class _ErrorSink:
    """Bad rows: counted into the summary, the first ``shown`` kept there, every one
    written to ``out`` as CSV ``line,raw,error`` (free text protected)."""

    def __init__(self, summary: ImportSummary, shown: int, out: TextIO | None) -> None:
        self.summary = summary
        self.shown = shown
        self.writer = csv.writer(out, lineterminator="\n") if out else None
        if self.writer is not None:
            self.writer.writerow(["line", "raw", "error"])

    def note(self, parsed: Parsed) -> None:
        summary = self.summary
        for err in parsed.errors:
            summary.errors += 1
            if len(summary.first_errors) < self.shown:
                summary.first_errors.append(err)
            if self.writer is not None:
                self.writer.writerow([err.line, protect(err.raw), protect(err.error)])


@dataclass(frozen=True, slots=True)
class _Pass:
    """What one pass over the input found: how it is laid out (the configuration the
    rows were parsed with) and how many rows were marked deleted."""

    cfg: ParseConfig
    deleted_rows: int


def _read_pass(
    reader: _Reader,
    cfg: ParseConfig,
    workers: int,
    summary: ImportSummary,
    errors: _ErrorSink,
    *,
    phase: str,
    merger: _Merger | None,
    strict: bool,
    progress: Progress | None,
) -> _Pass:
    """One pass over the input: sniff the layout from the first line, parse the blocks
    (in ``workers`` processes), and, with a ``merger``, merge the parsed rows into the
    list (else only validate). Counts rows into ``summary``."""
    first, first_raw = _first_line(reader)
    layout = sniff(first)
    validate = merger is None
    cfg = dataclasses.replace(cfg, layout=layout, validate_only=validate)
    pending_bytes = b"" if layout.header else first_raw
    summary.rows = rows = deleted_rows = 0
    done = len(first_raw) if layout.header else 0
    start_line = 2 if layout.header else 1
    for parsed in _parsed_blocks(cfg, _blocks(reader, pending_bytes, start_line), workers):
        rows += parsed.good + len(parsed.errors) + parsed.deleted_rows
        deleted_rows += parsed.deleted_rows
        done += parsed.nbytes
        if merger is None:
            errors.note(parsed)
        else:
            if not strict:
                errors.note(parsed)
            for specs, call_rows in parsed.calls:
                merger.merge(specs, call_rows, cfg.arity, summary)
        summary.rows = rows
        if progress is not None:
            progress(phase, done, rows)
    return _Pass(cfg, deleted_rows)


def _worker_count(options: ImportOptions, size: int | None) -> int:
    """Parse processes: as asked, else one for large input (or of unknown size) on a
    machine of two cores or more, none (parse here) otherwise."""
    if options.workers is not None:
        return options.workers
    big = size is None or size >= PARALLEL_FROM
    return 1 if big and (os.cpu_count() or 1) >= 2 else 0


def import_stream(
    table: Bulk,
    info: ListInfo,
    stream: IO[bytes],
    *,
    name: str,
    options: ImportOptions,
    errors_out: TextIO | None = None,
    progress: Progress | None = None,
    size: int | None = None,
    spool_dir: str | None = None,
) -> ImportSummary:
    """Import a CSV byte stream into a list: parse (:func:`parse_block`, in worker
    processes for large input), merge (``import.lua``, :class:`_Merger`), and, with
    ``--replace``, sweep what the file lacks. ``name`` names the file (for the default
    source and the replace reason); ``size``, if known, decides on parallel parsing;
    ``errors_out`` receives every bad row as CSV ``line,raw,error``. See the module
    docstring for the rules. The audit records are the caller's (the service's): the
    summary carries the batches they name."""
    started = time.monotonic()
    source = options.source or f"import:{name}"
    summary = ImportSummary(info.name, source)
    cfg = ParseConfig(
        layout=Layout(",", False, {"number": 0}),
        region=table.settings.default_region,
        buckets=table.buckets,
        default_status=_APPROVE_CODE[options.approve],
        default_reason=options.reason,
        source=source,
        by=options.by,
        at=repr(table.clock()),
        keep_status=options.keep_status,
        confirm_broad=options.confirm_broad,
        rows_per_call=options.rows_per_call,
    )
    workers = _worker_count(options, size)
    errors = _ErrorSink(summary, options.shown_errors, errors_out)

    def run(reader: _Reader, phase: str, merger: _Merger | None = None) -> _Pass:
        return _read_pass(
            reader, cfg, workers, summary, errors, phase=phase, merger=merger,
            strict=options.strict, progress=progress,
        )  # fmt: skip

    token = secrets.token_hex(8)
    merger = _Merger(table, info, token, cfg, options.restore_deleted)
    spool: IO[bytes] | None = None
    merger.register()
    try:
        if options.strict:
            seekable = stream.seekable()
            reader: _Reader = stream
            if not seekable:
                spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed below
                reader = _Spool(stream, spool)
            else:
                origin = stream.tell()
            checked = run(reader, "check")
            if summary.errors:
                summary.written = False
                summary.notes = _layout_notes(checked.cfg.layout, options)
                summary.seconds = time.monotonic() - started
                return summary
            if spool is not None:
                spool.seek(0)
                reader = spool
            else:
                stream.seek(origin)
            done = _written_or_say_so(lambda: run(reader, "import", merger), summary)
        else:
            done = _written_or_say_so(lambda: run(stream, "import", merger), summary)
        summary.notes = _layout_notes(done.cfg.layout, options)
        deleted_rows = done.deleted_rows
        if deleted_rows:
            summary.deleted_kept += deleted_rows
            summary.notes.append(
                f"{deleted_rows} rows marked deleted in the file were not imported "
                "(--keep-status imports them as removed entries)"
            )
        if options.replace:
            refused = _replace_guard(merger, summary, options)
            if refused:
                summary.replace_refused = refused
                summary.notes.append(refused)
            elif summary.errors:
                summary.notes.append(
                    f"--replace not applied: {summary.errors} bad rows (an entry whose row is "
                    "bad would have been removed); fix them, or use --strict"
                )
            else:
                if progress is not None:
                    progress("replace", 0, summary.rows)
                removal = table.new_batch(
                    "replace", f"not in {name} (import --replace)", source, cfg.by
                )
                merger.sweep(removal.id, summary)
                summary.replaced = True
                summary.removal = removal
        summary.batch = merger.only_batch()
    finally:
        merger.cleanup()
        if spool is not None:
            spool.close()
    counts = store.call(lambda: table.r.hget(table.keys.counts(info.id), "p"))
    summary.list_pending = int(counts or 0)
    summary.seconds = time.monotonic() - started
    return summary


def _replace_guard(merger: _Merger, summary: ImportSummary, options: ImportOptions) -> str:
    """Why the ``--replace`` sweep must not run ("" : it may)."""
    named = summary.rows - summary.errors
    if named <= 0:
        if not options.allow_empty:
            return (
                "--replace refused: the file names no entry"
                + (f" (all {summary.rows} rows are bad)" if summary.rows else "")
                + "; it would remove every live entry; nothing removed (--allow-empty "
                "empties the list)"
            )
        return ""  # emptying the list is what was asked
    if summary.errors:
        return ""  # the sweep is skipped anyway, with its own note
    table = merger.table
    counts = store.call(lambda: table.r.hmget(table.keys.counts(merger.info.id), "p", "a"))
    live = sum(int(n or 0) for n in counts)
    probe = ImportSummary(summary.list_name, summary.source)
    merger.sweep(0, probe)
    if live and probe.removed > options.max_remove * live:
        share = f"{options.max_remove * 100:g} %"
        return (
            f"--replace refused: it would remove {probe.removed} of the list's {live} live "
            f"entries, more than --max-remove {share}; nothing removed "
            f"({probe.kept_permanent} permanent entries missing from the file would be kept; "
            "--max-remove 100 allows it)"
        )
    return ""


def _layout_notes(layout: Layout, options: ImportOptions) -> list[str]:
    """What the user should know about how the file was read."""
    notes = []
    if layout.ignored:
        notes.append("columns ignored: " + ", ".join(layout.ignored))
    if "status" in layout.columns and not options.keep_status:
        notes.append(
            "the status column was not used (the import's own status applies); "
            "--keep-status uses it"
        )
    return notes


_W = TypeVar("_W")


def _written_or_say_so(write: Callable[[], _W], summary: ImportSummary) -> _W:
    """Run the writing pass; a Redis failure in it says how far the import got."""
    try:
        return write()
    except StoreError as exc:
        written = summary.added + summary.updated + summary.restored
        raise type(exc)(
            f"{exc}; the import stopped after {summary.rows} rows: {written} entries were "
            "written and stay in effect (--strict refuses bad rows, it does not undo a "
            "failure); run the same import again to finish it (imports are idempotent)"
        ) from exc


def import_file(
    table: Bulk,
    list_name: str,
    path: str,
    options: ImportOptions,
    *,
    stdin: IO[bytes] | None = None,
    errors_out: TextIO | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import ``path`` (``-`` for ``stdin``) into the list called ``list_name``."""
    info = table.get_list(list_name)
    refuse_registry(info)
    if path == "-":
        if stdin is None:
            raise InvalidInput("no standard input to read")
        return import_stream(
            table, info, stdin, name="stdin", options=options, errors_out=errors_out,
            progress=progress,
        )  # fmt: skip
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        return import_stream(
            table,
            info,
            handle,
            name=os.path.basename(path),
            options=options,
            errors_out=errors_out,
            progress=progress,
            size=size,
        )
