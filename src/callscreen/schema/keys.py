"""Every Redis key name callscreen uses, in one place.

The lists and everything the lookup reads share one hash tag (``{cs}`` by default) so
that the lookup script touches a single slot and stays valid on Redis Cluster; the
attempt log has tags of its own (below), so that on a Cluster it spreads over the shards.

Layout (``L`` a list id, ``B`` a bucket number, ``N`` a batch-bucket number):

``{cs}:meta``            hash   schema version, bucket count
``{cs}:lists``           hash   list name -> list id
``{cs}:lseq``            string last list id handed out
``{cs}:list:L``          hash   name, action, direction, scope, description, audit
``{cs}:global``          set    ids of global lists
``{cs}:camps``           set    campaign names that have assignments
``{cs}:camp:NAME``       set    list ids assigned to campaign NAME
``{cs}:lk``              hash   the lookup index: which lists apply to a call of each direction
                                and campaign (id, name, action, registry), the lengths the
                                prefixes have; rebuilt with every list or campaign change
                                (``lookuplib.lua`` says its fields)
``{cs}:e:L:B``           hash   exact entries of list L: field number // buckets -> record
``{cs}:p:L``             hash   prefix entries of list L: field prefix digits -> record
``{cs}:n:B``             hash   the holders index: field number // buckets (as in ``e``) ->
                                "L,L,...", the lists that hold the number (``lookuplib.lua``)
``{cs}:n:p``             hash   the same for prefixes: field prefix digits -> "L,L,..."
``{cs}:cnt:L``           hash   entry counts of list L by stored status (p, a, P, d)
``{cs}:x:L``             zset   active entries of list L that expire: entry -> expiry
``{cs}:st:L:S``          zset   entries of list L stored with status S (p pending, d removed):
                                member as in ``{cs}:x:L``, score its place in storage
                                order (:func:`storage_score`), for paging by status
``{cs}:nd:L:S``          zset   the directory of the number index of list L's entries stored
                                with status S (p, a, P, d): one member per chunk, the
                                lowest number (E.164 digits) the chunk may hold ("0" for
                                the first chunk), all scores 0 (read BYLEX)
``{cs}:nx:L:S:LOW``      zset   one chunk of that index: the numbers from LOW up to the next
                                chunk's LOW, as E.164 digits, all scores 0 (in digit order,
                                BYLEX), at most :data:`NUMBER_CHUNK` so it stays a listpack;
                                for searches by the start of a number (``record.lua``'s
                                ``rec_numbers``)
``{cs}:bseq``            string last batch id handed out
``{cs}:b:N``             hash   batch records (reason, source, who, when) -> JSON
``{cs}:hist:L``          stream changes to list L (audit trail)
``{cs}:hist``            stream changes to lists as a whole and to campaigns
``{cs}:reg:L:X``         string a registry list's exchange X (US: NPA-NXX, 6 digits): one bit
                                per possible number (10,000 bits, 1,250 bytes), bit n =
                                the number whose last four digits are n (GETBIT order)
``{cs}:regn:L``          hash   a registry list's exchanges: exchange -> numbers listed

Imports in progress (:mod:`callscreen.services.importer`; ``T`` an import's random token, ``LOC``
a bucket number or ``p`` for prefixes). Temporary: an import deletes its keys when it
is done, or the next import does if it died (its heartbeat stopped):

``{cs}:imports``         zset   running imports: token -> last heartbeat (epoch seconds)
``{cs}:imp:T:b``         hash   batch spec ("op US reason US source US by US at") -> the
                                batch id made for it (one batch per distinct spec)
``{cs}:imp:T:s:LOC``     hash   entries of the file seen so far (field as in the list's
                                ``e``/``p`` hash) -> "1": duplicates, and what
                                ``--replace`` keeps

(``import.lua`` builds the ``imp:T:s``, ``e``, ``p`` and ``b`` names from the base and the
token, as ``lookup.lua`` does.)

The attempt log (:mod:`callscreen.gateway.attemptlog`; ``DAY`` is ``YYYYMMDD`` in the log's
timezone, ``C`` a campaign name, ``""`` for calls with none, ``W`` a log writer id) is
spread over :data:`LOG_SHARDS` shards, each under a hash tag of its own, ``{LT}`` below
(:func:`log_tag`: ``{cs.log.S}``, or ``{cs.log.S.K}`` with the smallest ``K`` that puts
the tag's slot in the S-th sixteenth of Redis Cluster's 16,384 slots, so that the shards
spread over a Cluster's primaries while the lists stay together under ``{cs}``). A
number's shard is :func:`log_shard` of its digits: all that is kept about one number
(its blocked/labeled counts, its decider, its first-contact mark) lives in one shard.

``{LT}:log``             stream one record per allowed or unscreened call, trimmed to the
                                retention by count and/or age (calls with a number: the
                                number's shard; without one: any shard, round robin by batch)
``{LT}:log:k``           stream one record per blocked or labeled call (fail-closed blocks
                                included): evidence, trimmed by age only
                                (``calllog_blocked_days``), never by count
``{LT}:log:n:DIGITS``    list   a number's allowed/unscreened attempts, newest first: outcome
                                code (A, U) + the record's stream id in ``log``; trimmed
                                with the records, expiring when they are expected to go
``{LT}:log:nk:DIGITS``   list   the same of its blocked/labeled attempts (B, L, F =
                                fail-closed) in ``log:k``; kept ``calllog_blocked_days``
``{LT}:log:c:DAY``       hash   calls of DAY: "outcome TAB direction TAB list TAB campaign"
                                -> count (exact; they outlive the records); a reader sums
                                the shards
``{LT}:log:b:DAY:C:K``   zset   numbers blocked on DAY in campaign C (K = number % 2):
                                E.164 digits -> attempts (ZUNION sums them over days)
``{LT}:log:l:DAY:C:K``   zset   numbers labeled on DAY in campaign C, the same
``{LT}:log:d:B``         hash   the entry that last blocked or labeled a number: field
                                number // FIRST_CONTACT_BUCKETS -> "list TAB entry"
``{LT}:log:w:W``         string last batch log writer W applied to the shard
``{LT}:fc:B``            hash   first allowed contact of a number: field number //
                                FIRST_CONTACT_BUCKETS -> epoch milliseconds

These keys moved from ``{cs}`` (layout before log shards: ``{cs}:log``,
``{cs}:log:c:DAY``, ``{cs}:log:b|l:DAY:C:K``, ``{cs}:log:d:B``, ``{cs}:log:w:W``,
``{cs}:fc:B``); :func:`callscreen.services.logshards.migrate_attempt_log` moves old data.
``{cs}:meta`` field ``log_shards`` records the shard count once migrated.

(``reportmarks.lua`` builds a shard's ``fc`` and ``log:d`` names from the shard's base;
``reportentries.lua`` the ``lists``, ``e`` and ``p`` names from ``{cs}``, as ``lookup.lua``
does. No script reads both sides.)

The outcome watcher (:mod:`callscreen.gateway.outcomes`; ``DIGITS`` a number's E.164 digits,
``U`` an Asterisk channel uniqueid):

``{cs}:oc:n:DIGITS``     zset   failed outbound calls to DIGITS with a "no such number"
                                cause: uniqueid -> epoch ms; trimmed to the window and
                                expiring with it; deleted by an answered call
``{cs}:oc:u:U``          string call U was counted (SET NX EX, a day: one gateway
                                counts it)

(``optout.lua`` builds the ``lists``, ``lseq``, ``list``, ``global``, ``hist``, ``bseq``,
``b`` and ``e`` names from the base, as ``lookup.lua`` does.)

The HTTP API (:mod:`callscreen.services.apikeys`, :mod:`callscreen.api`; ``NAME`` an API key's
name, ``H`` the hex SHA-256 of a key, ``I`` a client's ``Idempotency-Key``):

``{cs}:ak:names``        hash   API key name -> H (the names in use)
``{cs}:ak:h:H``          hash   one API key: name, scopes, lists, created by/at, expires,
                                last used (the key itself is never stored)
``{cs}:idem:NAME:I``     string a bulk add's body hash and response, kept 24 h (SET NX EX)
``{cs}:ij:JOB``          hash   an import job of the API or the console: list, file,
                                options, state, progress, heartbeat, summary (kept 30 days)
``{cs}:ij``              zset   import job -> created at (epoch seconds): the console's
                                task log, newest first (trimmed past 30 days)

The cascade queue (:mod:`callscreen.services.cascading`; ``J`` a job id, ``H`` a host name):

``{cs}:cq``              stream cascade jobs (a plan each); one consumer group per host
``{cs}:cq:r:J``          hash   host -> the cascade's report (JSON); expires after a day
``{cs}:cq:lock:H``       string the runner of host H (SET NX PX, renewed while it runs)

The web console's users and sessions (:mod:`callscreen.services.users`; ``U`` a user name,
``S`` the hex SHA-256 of a session token, ``A`` a client address):

``{cs}:users``           set    the user names
``{cs}:user:U``          hash   one user: role, argon2 hash, disabled, created by/at
``{cs}:sess:S``          hash   one session: user, CSRF token, created at, address; expires
                                after the idle timeout, renewed on each request
``{cs}:usess:U``         set    the sessions of user U (ended together on disable/passwd)
``{cs}:signin:u:U``      string failed sign-ins for user U in the current window (INCR EX)
``{cs}:signin:a:A``      string failed sign-ins from address A in the current window
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

BATCH_BUCKET = 512  # batch records per hash; keeps each under hash-max-listpack-entries
# 2: the attempt log in shards; 3: entries keep their transitions; 4: blocked calls kept
# by age, per-number attempt indexes; 5: the lookup index; 6: the pending and removed
# entries' indexes; 7: the number index of exact entries, for searches by the start of a
# number; 8: the holders index, which lists hold each number and prefix, for the lookup
# (callscreen.services.migrations)
SCHEMA_VERSION = "8"
#: the stored statuses that have an index of their entries ({cs}:st:L:S)
INDEXED_STATUSES = ("p", "d")
DEFAULT_BUCKETS = 32768
#: numbers one chunk of a list's number index holds at most: a chunk of more is split
#: before it grows past Redis's zset-max-listpack-entries (128 by default), so every
#: chunk stays a listpack (about 12 bytes a number) rather than a skiplist (about 100)
NUMBER_CHUNK = 128
# first-contact marks: 32768 hashes keep up to ~16M numbers in listpacks (512 per hash)
FIRST_CONTACT_BUCKETS = 32768
# a day's blocked (or labeled) numbers of a campaign in one log shard: 2 sorted sets; over
# the 16 shards, 32 sets keep up to 4096 numbers in listpacks (zset-max-listpack-entries
# 128; integer members, ~13 bytes each)
DAY_LISTED_BUCKETS = 2
# attempt-log shards: a power of two that divides FIRST_CONTACT_BUCKETS // DAY_LISTED_BUCKETS,
# so a first-contact (or decider) bucket, and a day-listed bucket's numbers of one shard,
# never straddle shards. Changing it needs a migration of the log's data.
LOG_SHARDS = 16
CLUSTER_SLOTS = 16384
#: scores of exact entries in a status index: bucket * (ORDER_SPAN // buckets) + field,
#: below 2 ** 50 (exact in a double); prefixes score below 0 (:func:`storage_score`)
ORDER_SPAN = 2**50


# The key fragments the Lua scripts build names from (``base .. K_LIST .. id``). The
# scripts get them from this table through their generated prelude
# (:mod:`callscreen.schema.scripts`), and the :class:`Keys` methods below are built from
# the same strings: one source for both.
FRAGMENTS: dict[str, str] = {
    "META": ":meta",
    "LISTS": ":lists",
    "LSEQ": ":lseq",
    "LIST": ":list:",
    "GLOBAL": ":global",
    "CAMP": ":camp:",
    "CAMPS": ":camps",
    "LOOKUP": ":lk",
    "EXACT": ":e:",
    "PREFIXES": ":p:",
    "NUMBERS": ":n:",
    "BSEQ": ":bseq",
    "BATCH": ":b:",
    "HIST": ":hist",
    "HIST_LIST": ":hist:",
    "TOMB": ":tomb:",
    "TOMBS": ":tombs",
    "IMP": ":imp:",
    "IMP_SEEN": ":s:",
    "FIRST_CONTACT": ":fc:",
    "DECIDER": ":log:d:",
    "ATTEMPTS": ":log:n:",
    "KEPT_ATTEMPTS": ":log:nk:",
    "REG": ":reg:",
    "REG_INDEX": ":regn:",
    "STATUS": ":st:",
    "NUMDIR": ":nd:",
    "NUMIDX": ":nx:",
}
# The sizes the scripts need, from the same place.
NUMBERS: dict[str, int] = {
    "BATCH_BUCKET": BATCH_BUCKET,
    "ORDER_SPAN": ORDER_SPAN,
    "DEFAULT_BUCKETS": DEFAULT_BUCKETS,
    "NUMBER_CHUNK": NUMBER_CHUNK,
}
_F = FRAGMENTS


@dataclass(frozen=True)
class Keys:
    """Key names under one hash tag."""

    tag: str = "cs"

    @property
    def base(self) -> str:
        """The key prefix, hash tag included: ``{cs}``."""
        return "{" + self.tag + "}"

    @property
    def meta(self) -> str:
        return f"{self.base}{_F['META']}"

    @property
    def lists(self) -> str:
        return f"{self.base}{_F['LISTS']}"

    @property
    def list_seq(self) -> str:
        return f"{self.base}{_F['LSEQ']}"

    def list(self, list_id: int) -> str:
        return f"{self.base}{_F['LIST']}{list_id}"

    @property
    def global_lists(self) -> str:
        return f"{self.base}{_F['GLOBAL']}"

    @property
    def campaigns(self) -> str:
        return f"{self.base}{_F['CAMPS']}"

    @property
    def lookup(self) -> str:
        """The lookup index (``lookuplib.lua``): what the lookup script reads first."""
        return f"{self.base}{_F['LOOKUP']}"

    def campaign(self, name: str) -> str:
        return f"{self.base}{_F['CAMP']}{name}"

    def exact(self, list_id: int, bucket: int) -> str:
        return f"{self.base}{_F['EXACT']}{list_id}:{bucket}"

    def exact_pattern(self, list_id: int) -> str:
        return f"{self.base}{_F['EXACT']}{list_id}:*"

    def numbers(self, bucket: int) -> str:
        """The holders index's bucket ``bucket``: which lists hold each number of it."""
        return f"{self.base}{_F['NUMBERS']}{bucket}"

    @property
    def prefix_numbers(self) -> str:
        """The holders index of prefixes: which lists hold each prefix."""
        return f"{self.base}{_F['NUMBERS']}p"

    def registry(self, list_id: int, exchange: str) -> str:
        """A registry list's bitmap of one exchange (``lookup.lua`` builds it too)."""
        return f"{self.base}{_F['REG']}{list_id}:{exchange}"

    def registry_index(self, list_id: int) -> str:
        """A registry list's exchanges and how many numbers each lists."""
        return f"{self.base}{_F['REG_INDEX']}{list_id}"

    def prefixes(self, list_id: int) -> str:
        return f"{self.base}{_F['PREFIXES']}{list_id}"

    def counts(self, list_id: int) -> str:
        return f"{self.base}:cnt:{list_id}"

    def expiring(self, list_id: int) -> str:
        return f"{self.base}:x:{list_id}"

    def status_index(self, list_id: int, code: str) -> str:
        """The entries of a list stored with status ``code`` (``p`` or ``d``), in storage
        order (``record.lua``'s ``rec_index`` keeps it)."""
        return f"{self.base}{_F['STATUS']}{list_id}:{code}"

    def number_dir(self, list_id: int, code: str) -> str:
        """The directory of the number index of a list's entries stored with status
        ``code`` (p, a, P, d): each chunk's lowest number."""
        return f"{self.base}{_F['NUMDIR']}{list_id}:{code}"

    def number_chunk(self, list_id: int, code: str, low: str) -> str:
        """One chunk of that index: the numbers from ``low`` (digits; "0" for the first
        chunk) to the next chunk's."""
        return f"{self.base}{_F['NUMIDX']}{list_id}:{code}:{low}"

    def number_patterns(self, list_id: int) -> tuple[str, str]:
        """SCAN patterns of every key of a list's number indexes: directories, chunks."""
        return (f"{self.base}{_F['NUMDIR']}{list_id}:*", f"{self.base}{_F['NUMIDX']}{list_id}:*")

    @property
    def batch_seq(self) -> str:
        return f"{self.base}{_F['BSEQ']}"

    def batch(self, batch_id: int) -> str:
        return f"{self.base}{_F['BATCH']}{batch_id // BATCH_BUCKET}"

    def history(self, list_id: int) -> str:
        return f"{self.base}{_F['HIST_LIST']}{list_id}"

    @property
    def admin_history(self) -> str:
        return f"{self.base}{_F['HIST']}"

    def tombstone(self, list_id: int) -> str:
        """A deleted list's tombstone: name, who, when, why, how many entries it had."""
        return f"{self.base}{_F['TOMB']}{list_id}"

    @property
    def tombstones(self) -> str:
        """Deleted list names to the id of the latest deleted list of that name."""
        return f"{self.base}{_F['TOMBS']}"

    # -- the cascade queue (callscreen.services.cascading) ----------------------------------

    @property
    def cascade_queue(self) -> str:
        return f"{self.base}:cq"

    def cascade_result(self, job: str) -> str:
        return f"{self.base}:cq:r:{job}"

    def cascade_lock(self, host: str) -> str:
        return f"{self.base}:cq:lock:{host}"

    # -- imports in progress (callscreen.services.importer) ----------------------------------------

    @property
    def imports(self) -> str:
        """The running imports: token -> last heartbeat."""
        return f"{self.base}:imports"

    def import_temp(self, token: str) -> str:
        """The prefix of one import's temporary keys."""
        return f"{self.base}{_F['IMP']}{token}"

    def import_batches(self, token: str) -> str:
        """The batches one import made, by spec."""
        return f"{self.import_temp(token)}:b"

    def import_seen(self, token: str, loc: int | str) -> str:
        """The entries one import has seen in bucket ``loc`` (``"p"``: prefixes)."""
        return f"{self.import_temp(token)}{_F['IMP_SEEN']}{loc}"

    # -- attempt log (callscreen.gateway.attemptlog): one set per shard ---------------------------

    def log_base(self, shard: int) -> str:
        """The key prefix of one attempt-log shard, hash tag included: ``{cs.log.3}``."""
        return "{" + log_tag(self.tag, shard) + "}"

    def attempt_log(self, shard: int) -> str:
        return f"{self.log_base(shard)}:log"

    def kept_log(self, shard: int) -> str:
        """The shard's records of blocked and labeled calls: evidence, kept by age only."""
        return f"{self.log_base(shard)}:log:k"

    def attempt_index(self, number: int) -> str:
        """A number's (E.164 digits') index of allowed and unscreened calls, in its shard
        (``logwrite.lua`` builds it from the shard's base too)."""
        return f"{self.log_base(log_shard(number))}{_F['ATTEMPTS']}{number}"

    def kept_index(self, number: int) -> str:
        """A number's index of blocked and labeled calls (records in ``log:k``)."""
        return f"{self.log_base(log_shard(number))}{_F['KEPT_ATTEMPTS']}{number}"

    def attempt_logs(self) -> tuple[str, ...]:
        """Every stream of every shard: the count-bounded ones, then the kept ones."""
        return tuple(self.attempt_log(s) for s in range(LOG_SHARDS)) + tuple(
            self.kept_log(s) for s in range(LOG_SHARDS)
        )

    def day_counters(self, day: str, shard: int) -> str:
        return f"{self.log_base(shard)}:log:c:{day}"

    def day_listed(self, day: str, campaign: str, labeled: bool, bucket: int, shard: int) -> str:
        """The numbers of ``shard`` blocked (or labeled) on ``day`` in ``campaign``, one of
        :data:`DAY_LISTED_BUCKETS` sorted sets."""
        kind = "l" if labeled else "b"
        return f"{self.log_base(shard)}:log:{kind}:{day}:{campaign}:{bucket}"

    def decider(self, bucket: int) -> str:
        """The deciders of first-contact bucket ``bucket`` (in the bucket's shard)."""
        return f"{self.log_base(bucket_shard(bucket))}{_F['DECIDER']}{bucket}"

    def log_writer(self, writer: str, shard: int) -> str:
        return f"{self.log_base(shard)}:log:w:{writer}"

    def first_contact(self, bucket: int) -> str:
        """The first-contact marks of bucket ``bucket`` (in the bucket's shard)."""
        return f"{self.log_base(bucket_shard(bucket))}{_F['FIRST_CONTACT']}{bucket}"

    # the layout before log shards, for the migration

    @property
    def old_attempt_log(self) -> str:
        return f"{self.base}:log"

    @property
    def old_log_patterns(self) -> tuple[str, ...]:
        """SCAN patterns of the old layout's log keys other than the stream."""
        return (f"{self.base}:log:*", f"{self.base}:fc:*")

    # -- HTTP API keys (callscreen.services.apikeys) -------------------------------------------

    @property
    def api_key_names(self) -> str:
        """API key name -> the hex SHA-256 of the key."""
        return f"{self.base}:ak:names"

    def api_key(self, digest: str) -> str:
        """The record of the API key whose SHA-256 is ``digest`` (hex)."""
        return f"{self.base}:ak:h:{digest}"

    def idempotency(self, key_name: str, idempotency_key: str) -> str:
        """A request replayed under ``Idempotency-Key`` by API key ``key_name``."""
        return f"{self.base}:idem:{key_name}:{idempotency_key}"

    def import_job(self, job: str) -> str:
        """An import job of the HTTP API (its state, so that any API process answers)."""
        return f"{self.base}:ij:{job}"

    @property
    def import_jobs(self) -> str:
        """The import jobs by creation time (the console's task log)."""
        return f"{self.base}:ij"

    # -- console users and sessions (callscreen.services.users) -------------------------------

    @property
    def users(self) -> str:
        return f"{self.base}:users"

    def user(self, name: str) -> str:
        return f"{self.base}:user:{name}"

    def session(self, digest: str) -> str:
        return f"{self.base}:sess:{digest}"

    def user_sessions(self, name: str) -> str:
        return f"{self.base}:usess:{name}"

    def signin_user(self, name: str) -> str:
        return f"{self.base}:signin:u:{name}"

    def signin_address(self, address: str) -> str:
        return f"{self.base}:signin:a:{address}"

    # -- outcome watcher (callscreen.gateway.outcomes) ---------------------------------------------

    def outcome_failures(self, digits: str) -> str:
        return f"{self.base}:oc:n:{digits}"

    def outcome_seen(self, uniqueid: str) -> str:
        return f"{self.base}:oc:u:{uniqueid}"


def bucket_of(number: int, buckets: int) -> tuple[int, int]:
    """Where an exact number lives: ``(bucket, field)``.

    The field is ``number // buckets``, a small integer that Redis stores in a
    listpack as an integer (4-5 bytes) rather than as a string.
    """
    return number % buckets, number // buckets


_PREFIX_DIGITS = 15


def storage_score(buckets: int, member: str) -> int:
    """The score of an entry (its member ``BUCKET:FIELD`` or ``p:DIGITS``) in a status
    index: the order :func:`callscreen.services.entries.page_entries` reads a list in.
    Prefixes come first, ordered by their digits as text (base 11, a digit d as d + 1,
    0 past the end: 11 ** 15 < 2 ** 53), then exact entries by bucket, then field.
    ``record.lua``'s ``rec_order`` is the same function."""
    if member.startswith("p:"):
        score: int = -(11**_PREFIX_DIGITS)
        for i, digit in enumerate(member[2 : 2 + _PREFIX_DIGITS]):
            score += (int(digit) + 1) * 11 ** (_PREFIX_DIGITS - 1 - i)
        return score
    bucket, field = member.split(":")
    return int(bucket) * (ORDER_SPAN // buckets) + int(field)


def log_shard(digits: str | int) -> int:
    """The attempt-log shard of a number (its E.164 digits): bits above the day-listed
    bucket's, so each of a shard's day-listed sets and first-contact hashes holds only
    numbers of that shard."""
    return (int(digits) // DAY_LISTED_BUCKETS) % LOG_SHARDS


def bucket_shard(bucket: int) -> int:
    """The shard of first-contact (decider) bucket ``bucket`` = number % FIRST_CONTACT_BUCKETS:
    the same as :func:`log_shard` of every number in it."""
    return (bucket // DAY_LISTED_BUCKETS) % LOG_SHARDS


def _crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (its hash tag's, when it has a non-empty one)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16(raw) % CLUSTER_SLOTS


@functools.cache
def log_tag(tag: str, shard: int) -> str:
    """The hash tag of attempt-log shard ``shard``: ``TAG.log.S`` or ``TAG.log.S.K``, the
    first whose slot falls in the shard's share of the slot range (shard S of N: slots
    S*16384/N up to (S+1)*16384/N), as ``redis-cli --cluster create`` hands out ranges."""
    if not 0 <= shard < LOG_SHARDS:
        raise ValueError(f"no attempt-log shard {shard}")
    low = shard * CLUSTER_SLOTS // LOG_SHARDS
    high = (shard + 1) * CLUSTER_SLOTS // LOG_SHARDS
    k = 0
    while True:
        name = f"{tag}.log.{shard}" if k == 0 else f"{tag}.log.{shard}.{k}"
        if low <= key_slot("{" + name + "}") < high:
            return name
        k += 1
