"""Exponential backoff, the one formula behind every retry of the component: a live
source reopened (capture), a crashed camera worker restarted (runtime) and a refused
send retried (delivery).

The wait after the n-th consecutive failure is ``initial_s`` for the first and
``min(max_s, initial_s * 2**(n-1))`` after that, times a jitter factor
``jitter_base + jitter_spread * random()`` so that many cameras or devices recovering
at once do not retry in step (no jitter by default).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Counts consecutive failures and says how long to wait after each.

    ``failed()`` counts one failure and returns the wait (s) after it; ``reset()`` after
    a success. ``ceiling_s(n)`` is the wait before jitter; ``rng`` defaults to the
    ``random`` module's generator.
    """

    initial_s: float
    max_s: float
    jitter_base: float = 1.0
    jitter_spread: float = 0.0
    rng: random.Random | None = None
    failures: int = field(default=0, init=False)

    def ceiling_s(self, failures: int | None = None) -> float:
        """The wait after ``failures`` (default: the count so far, at least 1) before jitter."""
        n = self.failures if failures is None else failures
        if n <= 1:
            return self.initial_s
        return min(self.max_s, self.initial_s * 2.0 ** min(n - 1, 60))

    def delay_s(self, failures: int | None = None) -> float:
        """:meth:`ceiling_s` times a fresh jitter factor."""
        ceiling = self.ceiling_s(failures)
        if not self.jitter_spread:
            return ceiling * self.jitter_base
        draw = (self.rng or random).random()
        return ceiling * (self.jitter_base + self.jitter_spread * draw)

    def failed(self) -> float:
        self.failures += 1
        return self.delay_s()

    def reset(self) -> None:
        self.failures = 0
