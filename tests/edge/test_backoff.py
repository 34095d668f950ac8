"""The one backoff (edge_component/backoff.py): the waits of the three formulas it
replaced, in live capture, the supervisor and the sender."""

from __future__ import annotations

import random

from edge_component.backoff import Backoff


def test_waits_double_from_the_initial_wait_up_to_the_cap():
    b = Backoff(1.0, 10.0)
    assert [b.failed() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.failed() == 1.0


def test_the_first_wait_is_the_initial_one_even_above_the_cap():
    # As the supervisor and live capture always did: the cap applies from the second wait.
    b = Backoff(1.0, 0.5)
    assert [b.failed() for _ in range(3)] == [1.0, 0.5, 0.5]


def test_jitter_scales_each_wait_within_its_band():
    rng = random.Random(7)
    b = Backoff(0.5, 30.0, jitter_base=0.5, jitter_spread=0.5, rng=rng)
    again = random.Random(7)
    for n in range(1, 40):
        ceiling = min(30.0, 0.5 * 2.0 ** min(n - 1, 60))
        assert b.delay_s(n) == ceiling * (0.5 + 0.5 * again.random())  # the sender's formula, exactly
        assert b.ceiling_s(n) == ceiling
