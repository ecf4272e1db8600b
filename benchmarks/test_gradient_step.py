"""One gradient-descent step and each of its phases, per kernel and sample count.

A round is timed by ``SynchronizedClock``: it waits for the device before reading the clock at
the start and end of the round, so each round includes the device work its calls launched.
``step`` and ``forward`` can repeat freely, so pytest-benchmark calibrates several calls per
round (rounds of at least 1 ms on CUDA) and the one synchronization is shared. ``backward``
needs a fresh forward and ``update`` a fresh backward, which run as the untimed setup of each
one-call round: on CUDA at small sizes such a round also holds the synchronization's latency.
Before each ``backward`` a whole step runs first, so that its update clears the gradient and
the timed backward never accumulates into the last one.
"""

import math
import time


def rounds_for(kernel, phase_setup, phase, max_time=0.5) -> int:
    """Enough one-call rounds to fill about ``max_time``, from a quick untimed estimate."""
    start = time.perf_counter()
    for _ in range(3):
        phase_setup()
        phase()
        kernel.synchronize()
    per_round = (time.perf_counter() - start) / 3
    return max(5, min(2000, math.ceil(max_time / per_round)))


def test_step(kernel, benchmark):
    benchmark(kernel.step)


def test_forward(kernel, benchmark):
    benchmark(kernel.forward)


def test_backward(kernel, benchmark):
    def setup():
        kernel.step()  # its update clears the gradient (grad = None, zero_grad)
        kernel.forward()

    benchmark.pedantic(kernel.backward, setup=setup, warmup_rounds=1,
                       rounds=rounds_for(kernel, setup, kernel.backward))


def test_update(kernel, benchmark):
    def setup():
        kernel.forward()
        kernel.backward()

    benchmark.pedantic(kernel.update, setup=setup, warmup_rounds=1,
                       rounds=rounds_for(kernel, setup, kernel.update))
