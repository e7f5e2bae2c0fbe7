"""The precedence rules (pure): which matching entry decides a call."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from callscreen.callpath.decision import Decision
from callscreen.callpath.precedence import Match, decide, rank
from callscreen.core.model import Action, Result, Status
from callscreen.services.checking import explain

NUMBER = "33612345678"
ACTION_ORDER = [Action.BLOCK, Action.LABEL, Action.ALLOW]  # strongest first
ENFORCED = (Status.ACTIVE, Status.PERMANENT)


def m(
    list_name: str,
    action: Action,
    entry: str,
    status: Status = Status.ACTIVE,
) -> Match:
    """A match from an entry written as users do: ``+33*`` or ``+33612345678``."""
    is_prefix = entry.endswith("*")
    return Match(list_name, action, entry.strip("+*"), is_prefix, status)


# -- the rules one by one --------------------------------------------------------------


def test_no_match_decides_nothing() -> None:
    assert decide([]) is None


def test_exact_number_beats_any_prefix() -> None:
    exact = m("vip", Action.ALLOW, "+33612345678")
    prefix = m("france", Action.BLOCK, "+3361234567*")
    assert decide([prefix, exact]) == exact
    assert decide([exact, prefix]) == exact


def test_longer_prefix_beats_shorter() -> None:
    short = m("premium", Action.BLOCK, "+3389*")
    long = m("partners", Action.ALLOW, "+33899123*")
    assert decide([short, long]) == long


def test_block_beats_label_beats_allow_at_equal_specificity() -> None:
    block = m("c", Action.BLOCK, "+3361*")
    label = m("b", Action.LABEL, "+3361*")
    allow = m("a", Action.ALLOW, "+3361*")
    assert decide([allow, label, block]) == block
    assert decide([allow, label]) == label
    exact_allow = m("a", Action.ALLOW, "+33612345678")
    exact_block = m("z", Action.BLOCK, "+33612345678")
    assert decide([exact_allow, exact_block]) == exact_block


def test_full_tie_goes_to_the_list_name_sorting_first() -> None:
    first = m("alpha", Action.BLOCK, "+33*")
    second = m("beta", Action.BLOCK, "+33*")
    assert decide([second, first]) == first
    assert decide([first, second]) == first


def test_entries_not_enforced_never_decide() -> None:
    active_prefix = m("dnc", Action.BLOCK, "+33*")
    for status in (Status.PENDING, Status.DELETED, Status.EXPIRED):
        exact = m("vip", Action.ALLOW, "+33612345678", status)
        assert decide([exact, active_prefix]) == active_prefix
        assert decide([exact]) is None


def test_permanent_entries_are_enforced() -> None:
    permanent = m("dnc", Action.BLOCK, "+33612345678", Status.PERMANENT)
    assert decide([m("x", Action.ALLOW, "+33*"), permanent]) == permanent


# -- property: decide agrees with a brute-force reading of the rules -------------------


def beats(a: Match, b: Match) -> bool:
    """Whether ``a`` wins over ``b``, the rules read literally (DESIGN.md)."""
    if a.is_prefix != b.is_prefix:
        return not a.is_prefix  # an exact number beats any prefix
    if a.is_prefix and len(a.digits) != len(b.digits):
        return len(a.digits) > len(b.digits)  # a longer prefix beats a shorter one
    if a.action != b.action:
        return ACTION_ORDER.index(a.action) < ACTION_ORDER.index(b.action)
    return a.list_name < b.list_name


def reference(matches: list[Match]) -> Match | None:
    """The enforced match that no other enforced match beats."""
    live = [x for x in matches if x.status in ENFORCED]
    unbeaten = [x for x in live if not any(beats(y, x) for y in live if y is not x)]
    assert len(live) == 0 or unbeaten, "the rules must always leave a winner"
    return unbeaten[0] if unbeaten else None


@st.composite
def matches_for_one_number(draw: st.DrawFn) -> list[Match]:
    """Entries that all match NUMBER: the number itself or any of its prefixes."""
    size = draw(st.integers(0, 12))
    out = []
    for _ in range(size):
        length = draw(st.integers(1, len(NUMBER)))
        exact = length == len(NUMBER) and draw(st.booleans())
        out.append(
            Match(
                list_name=draw(st.sampled_from(["a", "b", "c", "dnc", "vip"])),
                action=draw(st.sampled_from(list(Action))),
                digits=NUMBER[:length],
                is_prefix=not exact,
                status=draw(st.sampled_from(list(Status))),
            )
        )
    return out


@given(matches_for_one_number(), st.randoms(use_true_random=False))
def test_decide_agrees_with_brute_force_reference(matches: list[Match], rnd: random.Random) -> None:
    winner = decide(matches)
    expected = reference(matches)
    if expected is None:
        assert winner is None
        return
    assert winner is not None
    assert winner.enforced
    assert rank(winner) == rank(expected)
    # the order in which Redis returns matches never changes the answer
    shuffled = list(matches)
    rnd.shuffle(shuffled)
    other = decide(shuffled)
    assert other is not None and rank(other) == rank(winner)


@given(matches_for_one_number(), matches_for_one_number())
def test_entries_not_enforced_change_nothing(base: list[Match], extra: list[Match]) -> None:
    inactive = [x for x in extra if x.status not in ENFORCED]
    before, after = decide(base), decide(base + inactive)
    assert (before is None) == (after is None)
    if before is not None and after is not None:
        assert rank(before) == rank(after)


# -- the explanation `check` prints ----------------------------------------------------


def decision_of(matches: list[Match]) -> Decision:
    winner = decide(matches)
    result = {Action.BLOCK: Result.BLOCKED, Action.LABEL: Result.LABELED}.get(
        winner.action if winner else Action.ALLOW, Result.ALLOWED
    )
    return Decision(
        result,
        number="+" + NUMBER,
        list_name=winner.list_name if winner else "",
        match=winner.display if winner else "",
        matches=tuple(matches),
    )


def test_explanations_name_the_rule_that_decided() -> None:
    exact = m("vip", Action.ALLOW, "+33612345678")
    short = m("dnc", Action.BLOCK, "+33*")
    long = m("mobile", Action.LABEL, "+336*")
    tie = m("zzz", Action.LABEL, "+336*")
    allow = m("ok", Action.ALLOW, "+336*")
    pending = m("review", Action.BLOCK, "+33612345678", Status.PENDING)

    assert "exact number beats any prefix" in explain(decision_of([short, exact]))
    assert "longer prefix beats a shorter one" in explain(decision_of([short, long]))
    assert "block beats label beats allow" in explain(decision_of([allow, long]))
    assert "name sorts first" in explain(decision_of([tie, long]))
    assert "only enforced match" in explain(decision_of([short]))
    text = explain(decision_of([pending]))
    assert "no enforced entry matches" in text and "pending review" in text
    assert "no entry" in explain(decision_of([]), ["dnc"])
