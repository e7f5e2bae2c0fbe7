"""The number indexes (one per stored status: ``{cs}:nd:L:S`` and its chunks
``{cs}:nx:L:S:LOW``; ``record.lua``'s ``rec_numbers``) hold exactly the numbers of a
list's exact entries stored with that status, in chunks that stay small listpacks,
after every kind of change (here: many numbers, so that chunks split and empty);
searches over them find what a filter over the whole list finds; and
``entries.build_number_index`` (the migration) builds the same indexes."""

from __future__ import annotations

import io
import random
from typing import Any

from callscreen.core.model import Action, Status
from callscreen.schema.keys import NUMBER_CHUNK
from callscreen.services import entries, importer
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin


def assert_number_index(r: Any, list_id: str) -> list[str]:
    """The indexes as they must be: for each stored status, the numbers of the list's
    exact entries stored with it, in digit order, chunk by chunk, each chunk a listpack
    of at most NUMBER_CHUNK numbers within its bounds. Returns every number, sorted."""
    buckets = int(r.hget("{cs}:meta", "buckets"))
    expected: dict[str, list[str]] = {code: [] for code in "paPd"}
    # SCAN may return a key twice (while Redis resizes its keyspace): each key once
    for key in set(r.scan_iter(f"{{cs}}:e:{list_id}:*")):
        for field, record in r.hgetall(key).items():
            number = str(int(field) * buckets + int(key.rsplit(":", 1)[1]))
            expected[record[0]].append(number)
    stored: set[str] = set()
    for code, numbers in expected.items():
        numbers.sort()
        lows = r.zrange(f"{{cs}}:nd:{list_id}:{code}", 0, -1)  # scores 0: in digit order
        if not numbers and not lows:
            continue
        assert lows[0] == "0"
        chunks = [r.zrange(f"{{cs}}:nx:{list_id}:{code}:{low}", 0, -1) for low in lows]
        assert [n for chunk in chunks for n in chunk] == numbers, code
        for i, (low, chunk) in enumerate(zip(lows, chunks, strict=True)):
            assert chunk or low == "0", "an empty chunk left in the directory"
            assert len(chunk) <= NUMBER_CHUNK
            assert all(n >= low for n in chunk)
            if i + 1 < len(lows):
                assert all(n < lows[i + 1] for n in chunk)
            if chunk:
                key = f"{{cs}}:nx:{list_id}:{code}:{low}"
                assert r.object("encoding", key) in ("listpack", "ziplist"), key
                stored.add(key)
    assert set(r.keys(f"{{cs}}:nx:{list_id}:*")) == stored
    return sorted(n for numbers in expected.values() for n in numbers)


def test_the_number_index_follows_many_changes_and_rebuilds_the_same(
    admin: SyncAdmin, r: Any
) -> None:
    rng = random.Random(15)
    admin.create_list("dnc", Action.BLOCK)
    list_id = r.hget("{cs}:lists", "dnc")
    numbers = sorted({f"+3361{rng.randrange(10**7):07d}" for _ in range(1500)})
    more = sorted({f"+3362{rng.randrange(10**7):07d}" for _ in range(300)})
    admin.add("dnc", numbers[::2])  # ascending: chunks split at the end
    admin.add("dnc", numbers[1::2], status=Status.PENDING)  # between: split in the middle
    admin.add("dnc", ["+3361*", "+33*"])  # prefixes are not in it
    assert len(assert_number_index(r, list_id)) == len(numbers)
    assert r.zcard(f"{{cs}}:nd:{list_id}:a") > len(numbers) // 2 // NUMBER_CHUNK
    admin.approve("dnc", numbers[1:200:2])
    admin.remove("dnc", numbers[:900], reason="gone")  # removed: still in the index
    assert len(assert_number_index(r, list_id)) == len(numbers)
    admin.restore("dnc", numbers[:10])
    admin.purge("dnc", "2100-01-01")  # purged: gone from it, chunks emptied
    assert assert_number_index(r, list_id) == sorted(n[1:] for n in numbers[900:] + numbers[:10])

    # imports: new numbers, removed ones restored, a --replace sweep (soft: kept)
    table = admin.table
    admin.remove("dnc", numbers[950:960], reason="gone")
    data = io.BytesIO(("\n".join([*more, *numbers[950:955]]) + "\n").encode())
    options = ImportOptions(workers=0, by="tester", restore_deleted=True)
    importer.import_stream(table, table.get_list("dnc"), data, name="a.csv", options=options)
    data = io.BytesIO(("\n".join(more[:50]) + "\n").encode())
    options = ImportOptions(workers=0, by="tester", replace=True, max_remove=1.0)
    importer.import_stream(table, table.get_list("dnc"), data, name="b.csv", options=options)
    indexed = assert_number_index(r, list_id)
    assert indexed == sorted(n[1:] for n in numbers[900:] + numbers[:10] + more)
    admin.purge("dnc", "2100-01-01")
    indexed = assert_number_index(r, list_id)
    assert indexed == sorted(n[1:] for n in more[:50])

    # a search finds what a filter over the list finds, page by page, each match once
    admin.add("dnc", ["+3362*", "+33*"])  # the matching prefixes first, by digits
    info = admin.table.get_list("dnc")
    for starting in ("3362", "33620", "336212", "3"):
        seen: list[str] = []
        after = None
        while True:
            items, after = admin.run(
                entries.page_entries(admin.ctx.table, info, after=after, limit=7, starting=starting)
            )
            seen += [key.display for key, _ in items]
            if after is None:
                break
        wanted = [n for n in indexed if n.startswith(starting)]
        prefixes = ["+" + p + "*" for p in ("33", "3362") if p.startswith(starting)]
        assert seen == prefixes + ["+" + n for n in wanted], starting

    # the migration's build gives the same chunks' numbers, from nothing
    r.delete(*r.keys(f"{{cs}}:n[dx]:{list_id}:*"))
    assert admin.run(entries.build_number_index(admin.ctx.table, info)) == len(indexed)
    assert assert_number_index(r, list_id) == indexed
    admin.add("dnc", numbers[:400])  # and the writers keep the built index right
    assert len(assert_number_index(r, list_id)) == len(indexed) + 400
    assert admin.run(entries.build_number_index(admin.ctx.table, info)) == len(indexed) + 400
    assert len(assert_number_index(r, list_id)) == len(indexed) + 400

    # a deleted list takes its index with it
    admin.delete_list("dnc")
    assert not r.keys(f"{{cs}}:n[dx]:{list_id}:*")
