"""One gradient-descent step and each of its phases, per kernel and sample count.

A round is timed by ``SynchronizedClock``: it waits for the device before reading the clock at
the start and end of the round, so each round includes the device work its calls launched.
``step`` and ``forward`` can repeat freely: a round holds K calls, K chosen here from a warm
estimate so that a round lasts about 2 ms (pytest-benchmark's own calibration runs before its
warm-up, and a slow first call made it pick one call for rounds that then took 0.2 ms), so
the one synchronization per round is shared and every round lasts at least 1 ms. ``backward``
needs a fresh forward and ``update`` a fresh backward, which run as the untimed setup of each
one-call round (pytest-benchmark allows one call per round with a setup): such a round is one
call, and on CUDA at small sizes it also holds the synchronization's latency. Before each
``backward`` a whole step runs first, so that its update clears the gradient and the timed
backward never accumulates into the last one.
"""

import math
import time

ROUND_SECONDS = 2e-3  # the target length of a round of step or forward calls
MAX_SECONDS = 0.5  # of rounds per benchmark, unless --gdbench-max-time says otherwise


def repeated(call, clock, batches=3, max_time=MAX_SECONDS) -> tuple[int, int]:
    """(calls per round, rounds): rounds of about ROUND_SECONDS filling ``max_time``, from
    the fastest of ``batches`` batches of warm calls read on the round's own clock (a batch
    that another process slowed would otherwise make the rounds too short)."""
    for _ in range(3):
        call()
    per_call = math.inf
    for _ in range(batches):
        calls, start = 0, clock()
        while (elapsed := clock() - start) < ROUND_SECONDS or calls < 3:
            call()
            calls += 1
        per_call = min(per_call, elapsed / calls)
    k = max(1, math.ceil(ROUND_SECONDS / per_call))
    return k, max(5, min(2000, math.ceil(max_time / (k * per_call))))


def rounds_for(kernel, phase_setup, phase, max_time=MAX_SECONDS) -> int:
    """Enough one-call rounds to fill about ``max_time``, from a quick untimed estimate."""
    start = time.perf_counter()
    for _ in range(3):
        phase_setup()
        phase()
        kernel.synchronize()
    per_round = (time.perf_counter() - start) / 3
    return max(5, min(2000, math.ceil(max_time / per_round)))


def test_step(kernel, benchmark, round_clock, max_time):
    calls, rounds = repeated(kernel.step, round_clock, max_time=max_time)
    benchmark.pedantic(kernel.step, iterations=calls, rounds=rounds, warmup_rounds=1)


def test_forward(kernel, benchmark, round_clock, max_time):
    calls, rounds = repeated(kernel.forward, round_clock, max_time=max_time)
    benchmark.pedantic(kernel.forward, iterations=calls, rounds=rounds, warmup_rounds=1)


def test_backward(kernel, benchmark, max_time):
    def setup():
        kernel.step()  # its update clears the gradient (grad = None, zero_grad)
        kernel.forward()

    benchmark.pedantic(kernel.backward, setup=setup, warmup_rounds=1,
                       rounds=rounds_for(kernel, setup, kernel.backward, max_time))


def test_update(kernel, benchmark, max_time):
    def setup():
        kernel.forward()
        kernel.backward()

    benchmark.pedantic(kernel.update, setup=setup, warmup_rounds=1,
                       rounds=rounds_for(kernel, setup, kernel.update, max_time))
