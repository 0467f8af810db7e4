"""The retry schedule: pure, with the randomness passed in."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_seconds(
    attempt: int,
    base: float = 2.0,
    cap: float = 300.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry number `attempt` (1-based): exponential, capped, jittered.

    The jitter takes the delay from half to all of its exponential value, so
    replicas that failed together do not all come back at the same moment.
    """
    exponential = min(cap, base * 2 ** max(attempt - 1, 0))
    return exponential * (0.5 + 0.5 * rand())
