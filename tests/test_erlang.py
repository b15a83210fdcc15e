"""Erlang B/C/A (fsacd/core/erlang.py) against textbook values and independent formulas."""

from __future__ import annotations

import math

import pytest

from fsacd.core import erlang


def erlang_c_direct(n: int, a: float) -> float:
    """The textbook summation form of Erlang C (independent of the module's recursion)."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def test_erlang_b_and_c_small_exact_values() -> None:
    # M/M/3 at 2 erlangs: B = 4/19, C = 4/9
    assert erlang.erlang_b(3, 2.0) == pytest.approx(4 / 19, rel=1e-12)
    assert erlang.erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)
    assert erlang.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: ρ
    assert erlang.erlang_c(5, 5.0) == 1.0
    assert erlang.erlang_c(5, 0.0) == 0.0


@pytest.mark.parametrize(("n", "a"), [(2, 1.5), (11, 10.0), (14, 12.0), (50, 45.5), (120, 100.0)])
def test_erlang_c_matches_the_summation_form(n: int, a: float) -> None:
    assert erlang.erlang_c(n, a) == pytest.approx(erlang_c_direct(n, a), rel=1e-9)


def test_textbook_example_100_calls_per_half_hour_180_s() -> None:
    """The classic worked example: 100 calls in 30 minutes, 180 s handle time (10 erlangs),
    service level target 20 s: 11 agents wait 68.2 %, ASA 122.8 s; 12 agents 44.9 %, 40.4 s."""
    rate = 100 / 1800
    p11 = erlang.predict_c(11, rate, 180, 20)
    assert p11.prob_wait == pytest.approx(0.6821, abs=1e-4)
    assert p11.asa == pytest.approx(122.8, abs=0.05)
    assert p11.service_level == pytest.approx(1 - 0.68212 * math.exp(-20 / 180), abs=1e-4)
    assert p11.occupancy == pytest.approx(10 / 11)
    p12 = erlang.predict_c(12, rate, 180, 20)
    assert p12.prob_wait == pytest.approx(0.4494, abs=1e-4)
    assert p12.asa == pytest.approx(40.4, abs=0.05)


def test_issue_example_240_per_hour_14_agents() -> None:
    p = erlang.predict(14, 240 / 3600, 180, None, 20)
    assert p.model == "erlang_c"
    assert p.offered_load == pytest.approx(12.0)
    assert p.prob_wait == pytest.approx(erlang_c_direct(14, 12.0), rel=1e-9)
    drain = 14 / 180 - 240 / 3600
    assert p.asa == pytest.approx(p.prob_wait / drain, rel=1e-9)
    assert p.service_level == pytest.approx(1 - p.prob_wait * math.exp(-drain * 20), rel=1e-9)


def test_overload_has_no_steady_state_without_patience() -> None:
    p = erlang.predict_c(10, 12 / 180, 180, 20)
    assert p.service_level == 0.0 and math.isinf(p.asa) and p.occupancy == 1.0


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    c = erlang.predict_c(14, 240 / 3600, 180, 20)
    a = erlang.predict_a(14, 240 / 3600, 180, 1e9, 20)
    assert a.prob_wait == pytest.approx(c.prob_wait, rel=1e-5)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-5)
    assert a.asa == pytest.approx(c.asa, rel=1e-4)
    assert a.abandoned < 1e-6


def poisson_tail(a: float, n: int) -> float:
    return 1.0 - sum(math.exp(-a) * a**k / math.factorial(k) for k in range(n))


def test_erlang_a_with_patience_equal_to_handle_time_is_m_m_infinity() -> None:
    """θ = μ: everybody in the system leaves at rate μ, so the number in the system is
    Poisson(A); waiting = at least N present; abandoned = θ E[(X - N)+] / λ."""
    n, rate, handle = 8, 0.05, 120.0
    a = rate * handle  # 6 erlangs
    p = erlang.predict_a(n, rate, handle, handle, 20)
    assert p.prob_wait == pytest.approx(poisson_tail(a, n), rel=1e-9)
    excess = sum((k - n) * math.exp(-a) * a**k / math.factorial(k) for k in range(n, 100))
    assert p.abandoned == pytest.approx(excess / handle / rate, rel=1e-9)
    busy = sum(min(k, n) * math.exp(-a) * a**k / math.factorial(k) for k in range(100))
    assert p.occupancy == pytest.approx(busy / n, rel=1e-9)


def test_erlang_a_service_level_bounds_and_monotone() -> None:
    args = (14, 240 / 3600, 180, 60)
    at0 = erlang.predict_a(*args, threshold=0)
    assert at0.service_level == pytest.approx(1 - at0.prob_wait, rel=1e-12)
    levels = [erlang.predict_a(*args, threshold=t).service_level for t in (5, 20, 60, 300)]
    assert levels == sorted(levels)
    far = erlang.predict_a(*args, threshold=5000)
    assert far.service_level == pytest.approx(1 - far.abandoned, abs=1e-9)
    # patience helps the callers who stay: shorter ASA than Erlang C
    assert at0.asa < erlang.predict_c(14, 240 / 3600, 180).asa


def test_erlang_a_exponential_wait_for_one_agent() -> None:
    """M/M/1+M with an arrival at the head only: check the served-within-T formula on a case
    worked by hand: N=1, λ→small, so almost every waiting arrival finds 0 ahead: its wait is
    exp(μ+θ) and it is served with probability μ/(μ+θ)."""
    mu, theta, t = 1 / 10, 1 / 20, 5.0
    p = erlang.predict_a(1, 1e-6, 10, 20, t)
    waiting = p.prob_wait
    expected = (1 - waiting) + waiting * mu / (mu + theta) * (1 - math.exp(-(mu + theta) * t))
    assert p.service_level == pytest.approx(expected, rel=1e-6)
    assert p.asa == pytest.approx(waiting * mu / (mu + theta) / (mu + theta) / (1 - p.abandoned),
                                  rel=1e-4)


def test_bad_inputs_are_refused() -> None:
    for args in ((0, 1, 1), (1, 0, 1), (1, 1, -1)):
        with pytest.raises(ValueError):
            erlang.predict_c(*args)
    with pytest.raises(ValueError):
        erlang.predict_a(1, 1, 1, 0)


def test_replay_ideal_queue_by_hand() -> None:
    from fsacd.core.replay import Caller, replay

    # one agent; calls at 0, 1, 2 of 10 s each: waits 0, 9, 18; patience 15 on the third
    out = replay([Caller(0, 10), Caller(1, 10), Caller(2, 10, patience=15)], 1, 10)
    assert out["calls"] == 3 and out["abandoned"] == pytest.approx(1 / 3)
    assert out["asa"] == pytest.approx(4.5) and out["service_level"] == pytest.approx(2 / 3)
    # two agents: nobody waits; warm-up callers shape the queue but are not counted
    out = replay([Caller(0, 10, measured=False), Caller(1, 10), Caller(2, 10)], 2, 0)
    assert out["calls"] == 2 and out["asa"] == pytest.approx(4.0)


def test_replay_converges_to_erlang_c() -> None:
    import random

    from fsacd.core.replay import Caller, replay

    rng = random.Random(5)
    t, callers = 0.0, []
    while t < 2_000_000:  # 10 erlangs on 12 agents, ~11,000 calls
        t += rng.expovariate(1 / 180)
        callers.append(Caller(t, rng.expovariate(1 / 1800), measured=t > 50_000))
    out = replay(callers, 12, 200)
    pred = erlang.predict_c(12, 1 / 180, 1800, 200)
    assert out["service_level"] == pytest.approx(pred.service_level, abs=0.05)
    assert out["asa"] == pytest.approx(pred.asa, rel=0.25)
