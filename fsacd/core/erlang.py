"""Queueing predictions for capacity planning: Erlang B, Erlang C and Erlang A.

Plain maths, no I/O. Inputs: ``agents`` (N), ``rate`` (λ, calls per second), ``handle`` (mean
time an agent is busy per call, 1/μ, seconds), ``patience`` (mean time a caller waits before
hanging up, 1/θ, seconds; ``None`` = callers never give up, Erlang C) and ``threshold`` (T,
seconds) for the service level.

Definitions (the same ones ``fsacd simulate`` measures):

- ``prob_wait``: the fraction of callers who find no agent free;
- ``service_level``: the fraction of *all* callers answered within T (a caller who gives up
  counts against it, whenever they give up);
- ``asa``: the average speed of answer, the mean wait of the callers who were answered
  (those answered at once count with 0);
- ``abandoned``: the fraction of callers who give up before being answered;
- ``occupancy``: the fraction of agent time spent on calls.

Erlang C (M/M/N) has closed forms. Erlang A (M/M/N+M, exponential patience) is computed from
its stationary distribution: an arrival who finds ``k`` callers ahead of it is answered with
probability ``Nμ / (Nμ + (k+1)θ)``, and its wait is then a sum of ``k + 1`` exponential phases
of rates ``Nμ + jθ`` (j = k+1 ... 1); the distribution of that sum is taken by uniformization.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: the waiting-room size at which the Erlang A series is cut when its terms never got small
MAX_QUEUE = 20000


@dataclass(frozen=True)
class Prediction:
    """What a model predicts for one queue (times in seconds, fractions 0..1)."""

    model: str
    agents: int
    offered_load: float  # erlangs: rate * handle
    prob_wait: float
    service_level: float
    asa: float
    abandoned: float
    occupancy: float
    threshold: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/N/N (the stable recursion B(n) = aB/(n + aB))."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """Probability that a caller waits in M/M/N (1.0 when the load reaches the agents)."""
    if agents <= 0 or load >= agents:
        return 1.0
    if load <= 0:
        return 0.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1 - b))


def _check(agents: int, rate: float, handle: float, threshold: float) -> None:
    if agents < 1:
        raise ValueError("agents must be at least 1")
    if rate <= 0 or handle <= 0:
        raise ValueError("the call rate and the handle time must be positive")
    if threshold < 0:
        raise ValueError("the service-level threshold must not be negative")


def predict_c(agents: int, rate: float, handle: float, threshold: float = 20.0) -> Prediction:
    """Erlang C: callers wait for ever. An overloaded queue (load >= agents) has no steady
    state: service level 0, ASA infinite, occupancy 1."""
    _check(agents, rate, handle, threshold)
    load = rate * handle
    if load >= agents:
        return Prediction("erlang_c", agents, load, 1.0, 0.0, math.inf, 0.0, 1.0, threshold)
    c = erlang_c(agents, load)
    drain = agents / handle - rate  # Nμ - λ
    return Prediction(
        "erlang_c",
        agents,
        load,
        c,
        1.0 - c * math.exp(-drain * threshold),
        c / drain,
        0.0,
        load / agents,
        threshold,
    )


def predict(
    agents: int,
    rate: float,
    handle: float,
    patience: float | None = None,
    threshold: float = 20.0,
) -> Prediction:
    """Erlang C without ``patience``, Erlang A with it."""
    if patience is None:
        return predict_c(agents, rate, handle, threshold)
    return predict_a(agents, rate, handle, patience, threshold)


def _log_states(agents: int, rate: float, mu: float, theta: float) -> list[float]:
    """log of the unnormalised stationary probabilities π_0 ... π_{N+K} of M/M/N+M."""
    load = rate / mu
    logs = [0.0]
    for n in range(1, agents + 1):
        logs.append(logs[-1] + math.log(load) - math.log(n))
    peak = max(logs)
    k = 0
    while k < MAX_QUEUE:
        k += 1
        logs.append(logs[-1] + math.log(rate) - math.log(agents * mu + k * theta))
        peak = max(peak, logs[-1])
        # past the mode the terms fall at least geometrically: stop when negligible
        if logs[-1] < peak - 50 and logs[-1] < logs[-2]:
            break
    return logs


def _poisson_weights(mean: float, eps: float = 1e-15) -> list[float]:
    """Poisson(mean) probabilities 0, 1, ... until the remaining tail is below ``eps``."""
    out: list[float] = []
    logp = -mean
    total = 0.0
    n = 0
    while True:
        p = math.exp(logp)
        out.append(p)
        total += p
        if n > mean and 1.0 - total < eps:
            return out
        if n > mean + 40 * math.sqrt(mean + 1) + 100:
            return out
        n += 1
        logp += math.log(mean) - math.log(n)


def _answered_within(
    agents: int, mu: float, theta: float, weights: list[float], threshold: float
) -> float:
    """Σ_m weights[m] * P(m exponential phases of rates Nμ + jθ, j = m..1, end within T).

    ``weights[m]`` (m >= 1) is the probability mass of arrivals answered after m phases.
    Uniformization of the pure-death chain m -> m-1 at rate Nμ + mθ, absorbed at 0.
    """
    if threshold <= 0:
        return 0.0
    top = len(weights) - 1
    lam = agents * mu + top * theta
    v = list(weights)
    v[0] = 0.0
    absorbed = 0.0
    result = 0.0
    stay = [1.0 - (agents * mu + m * theta) / lam for m in range(top + 1)]
    for p in _poisson_weights(lam * threshold):
        result += p * absorbed
        # one uniformized step
        absorbed += v[1] * (1.0 - stay[1]) if top >= 1 else 0.0
        for m in range(1, top + 1):
            moved = v[m] * (1.0 - stay[m])
            v[m] -= moved
            if m > 1:
                v[m - 1] += moved
    return result


def predict_a(
    agents: int, rate: float, handle: float, patience: float, threshold: float = 20.0
) -> Prediction:
    """Erlang A (M/M/N+M): exponential patience with mean ``patience`` seconds."""
    _check(agents, rate, handle, threshold)
    if patience <= 0:
        raise ValueError("patience must be positive")
    mu, theta = 1.0 / handle, 1.0 / patience
    logs = _log_states(agents, rate, mu, theta)
    peak = max(logs)
    probs = [math.exp(x - peak) for x in logs]
    total = sum(probs)
    probs = [p / total for p in probs]
    n_mu = agents * mu
    p_wait = sum(probs[agents:])
    served_after = [0.0]  # served_after[m]: arrivals who find m-1 ahead and are answered
    served = 1.0 - p_wait
    wait_sum = 0.0
    phases = 0.0  # Σ 1/(Nμ + jθ) for j = 1..m
    for k, p in enumerate(probs[agents:]):
        q = n_mu / (n_mu + (k + 1) * theta)
        phases += 1.0 / (n_mu + (k + 1) * theta)
        served_after.append(p * q)
        served += p * q
        wait_sum += p * q * phases
    within = (1.0 - p_wait) + _answered_within(agents, mu, theta, served_after, threshold)
    return Prediction(
        "erlang_a",
        agents,
        rate * handle,
        p_wait,
        min(1.0, within),
        wait_sum / served if served > 0 else math.inf,
        1.0 - served,
        rate * served * handle / agents,
        threshold,
    )
