"""The FastAGI server's own counts, as plain ints: a dict increment per call, no lock
and no label lookup on the call path. :class:`callscreen.gateway.metrics.Metrics` reads
them when Prometheus scrapes."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from callscreen.callpath.decision import Decision
from callscreen.core.model import Direction

__all__ = ["LATENCY_BUCKETS", "CallStats", "LatencyHistogram"]

#: Upper bounds (seconds) of the decision latency histogram: sub-millisecond answers
#: on a quiet gateway, up to the default deadline (0.2 s) and the reply timeout (2 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

#: Directions as metric labels: anything else the dialplan sends is ``invalid``.
_DIRECTIONS = frozenset(d.value for d in Direction)


class LatencyHistogram:
    """A fixed-bucket histogram: one ``bisect`` and two additions per observation."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound falls in that bound's bucket (le=)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus wants them, ``+Inf`` last."""
        total = 0
        out: list[tuple[str, float]] = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out


class CallStats:
    """What the FastAGI server counts, as plain ints (read by :class:`Metrics`).

    Labels are bounded: ``script`` is a route's name (unknown scripts are refused
    before they are counted), ``outcome``, ``cause`` and ``reason`` come from fixed
    sets in the server, ``result`` from :class:`~callscreen.core.model.Result`, and
    ``direction`` is mapped to ``inbound``, ``outbound`` or ``invalid``.
    """

    __slots__ = ("calls", "decisions", "fails", "latency", "refused", "unanswered")

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        self.decisions: dict[tuple[str, str, str], int] = {}
        self.fails: dict[tuple[str, str, str, str], int] = {}
        self.refused: dict[str, int] = {}
        self.unanswered: dict[str, int] = {}
        self.latency = LatencyHistogram()

    def answered(
        self,
        script: str,
        outcome: str,
        seconds: float | None,
        decision: Decision | None,
        direction: str = "",
        cause: str = "",
    ) -> None:
        """One call's log line: its outcome, its decision if it had one, its latency
        (``None``: no answer was written)."""
        key = (script, outcome)
        self.calls[key] = self.calls.get(key, 0) + 1
        if seconds is not None:
            self.latency.observe(seconds)
        if decision is None:
            return
        direction = direction if direction in _DIRECTIONS else "invalid"
        result = decision.result.value
        if decision.failed:
            fkey = (script, result, direction, cause or "unavailable")
            self.fails[fkey] = self.fails.get(fkey, 0) + 1
        else:
            dkey = (script, result, direction)
            self.decisions[dkey] = self.decisions.get(dkey, 0) + 1

    def refuse(self, reason: str) -> None:
        """A connection closed unread (``draining``, ``overload``, ``not_allowed``)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def unanswer(self, reason: str) -> None:
        """A connection closed without an answer (``env_timeout``, ``protocol_error``,
        ``hangup``, ``unknown_script``, ``error``, ``evicted``, ``idle``)."""
        self.unanswered[reason] = self.unanswered.get(reason, 0) + 1
