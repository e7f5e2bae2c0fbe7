"""The four-eyes rule (``CALLSCREEN_FOUR_EYES=true``), in the entries and transfer
services so that no front end bypasses it: a permanent approval needs another actor
than the one who added the entry (the actor of the entry's creating batch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callscreen.core.config import Settings
from callscreen.core.errors import Refused
from callscreen.core.model import Action, Direction, Status
from callscreen.services.importer import ImportOptions
from tests.support.blocking import SyncAdmin as Admin


def test_four_eyes_rule(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=redis_url, default_region="FR", four_eyes=True, spool_dir=""
    )
    with Admin(settings) as admin:
        admin.create_list("dnc", Action.BLOCK, Direction.BOTH, by="user:alice")
        # imported entries wait for review (pending)
        first, second = tmp_path / "a.csv", tmp_path / "c.csv"
        first.write_text("+33612345678\n+33612345679\n")
        second.write_text("+33612345680\n")
        admin.import_file("dnc", str(first), ImportOptions(), by="user:alice")
        admin.import_file("dnc", str(second), ImportOptions(), by="key:crm (agent 1)")
        # the one who added them cannot make them permanent, by name or all pending
        with pytest.raises(Refused, match="four-eyes"):
            admin.approve("dnc", ["+33612345678"], permanent=True, by="user:alice")
        with pytest.raises(Refused, match="four-eyes"):
            admin.approve("dnc", all_pending=True, permanent=True, by="user:alice")
        # a client's note after a key's name is the same actor
        with pytest.raises(Refused, match="four-eyes"):
            admin.approve("dnc", ["+33612345680"], permanent=True, by="key:crm (agent 2)")
        assert admin.show_entry("dnc", "+33612345678", by="t").status is Status.PENDING
        # a plain approval is not concerned; another person may approve permanently
        admin.approve("dnc", ["+33612345678"], by="user:alice")
        result = admin.approve("dnc", all_pending=True, permanent=True, by="user:bob")
        assert result.outcomes["approved"] == 2
        admin.approve("dnc", ["+33612345678"], permanent=True, by="user:bob")
        assert admin.show_entry("dnc", "+33612345678", by="t").status is Status.PERMANENT
        # an import cannot approve permanently under the rule
        csv_file = tmp_path / "n.csv"
        csv_file.write_text("+33612345690\n")
        with pytest.raises(Refused, match="four-eyes"):
            admin.import_file(
                "dnc", str(csv_file), ImportOptions(approve=Status.PERMANENT), by="user:bob"
            )
    # without the rule, the one who added an entry may approve it permanently
    with Admin(settings.model_copy(update={"four_eyes": False})) as admin:
        admin.add("dnc", ["+33612345691"], by="user:alice")
        admin.approve("dnc", ["+33612345691"], permanent=True, by="user:alice")
        assert admin.show_entry("dnc", "+33612345691", by="t").status is Status.PERMANENT
