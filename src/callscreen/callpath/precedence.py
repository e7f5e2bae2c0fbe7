"""Which matching entry decides a call. Pure rules, no I/O.

Among the enforced entries that match a number in the lists that apply to a call:

1. an exact number beats any prefix;
2. a longer prefix beats a shorter one;
3. at equal specificity, block beats label beats allow (a do-not-call request is
   never overridden by accident);
4. at a full tie (same key, same action, in two lists) the list with the lower
   name decides, so that the answer never depends on Redis' set ordering.

A national registry's listing (a match from a registry list, :attr:`Match.registry`)
takes part only when no allow entry of the company's own lists matches: such an allow
entry overrides the registry (the established-business-relationship exemption), and
then the rules above decide among the company's own entries, so the allow entry never
overrides the company's own block lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from callscreen.core.model import Action, Status

_ACTION_RANK = {Action.BLOCK: 2, Action.LABEL: 1, Action.ALLOW: 0}


@dataclass(frozen=True, slots=True)
class Match:
    """One entry of one list that matches the screened number."""

    list_name: str
    action: Action
    digits: str  # the entry's digits, without '+' or '*'
    is_prefix: bool
    status: Status = Status.ACTIVE
    reason: str = ""
    source: str = ""
    registry: bool = False  # a national registry's listing (a registry list's bit)

    @property
    def display(self) -> str:
        """The entry as users write it: ``+33123456789`` or ``+33*``."""
        return "+" + self.digits + ("*" if self.is_prefix else "")

    @property
    def enforced(self) -> bool:
        return self.status in (Status.ACTIVE, Status.PERMANENT)


def specificity(match: Match) -> int:
    """Higher is more specific: an exact number outranks every prefix."""
    return 100 if not match.is_prefix else len(match.digits)


def rank(match: Match) -> tuple[int, int, str]:
    """The sort key of the rules above: the smallest key wins."""
    return (-specificity(match), -_ACTION_RANK[match.action], match.list_name)


def contenders(matches: Iterable[Match]) -> list[Match]:
    """The matches that take part in the decision: the enforced ones, less the registry
    listings when an allow entry of the company's own lists matches (the exemption)."""
    enforced = [m for m in matches if m.enforced]
    if any(m.action is Action.ALLOW and not m.registry for m in enforced):
        return [m for m in enforced if not m.registry]
    return enforced


def decide(matches: Iterable[Match]) -> Match | None:
    """The deciding entry among ``matches`` (only enforced ones count), or None."""
    taking_part = contenders(matches)
    return min(taking_part, key=rank) if taking_part else None
