"""The token bucket both rate limiters share: its arithmetic on a given clock, and the async limiter's steps."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter
from airflow_provider_linkmsg.hooks.transport.ratelimit import TokenBucket

rates = st.floats(min_value=0.5, max_value=1000)
bursts = st.integers(min_value=1, max_value=50)
gaps = st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200)


def _conforms(times: list[float], rate: float, burst: int) -> bool:
    """No window [a, b] holds more than ``burst + rate * (b - a)`` of ``times`` (sorted): a bucket that
    starts full and refills at ``rate`` never runs out when one token is taken at each of ``times``."""
    tokens, last = float(burst), times[0] if times else 0.0
    for t in times:
        tokens = min(burst, tokens + (t - last) * rate) - 1
        last = t
        if tokens < -1e-6:
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=bursts, gaps=gaps)
def test_tokens_taken_at_any_times_conform_to_the_bucket(rate, burst, gaps):
    bucket, now, sent = TokenBucket(rate, burst, 0.0), 0.0, []
    for gap in gaps:  # callers ask at arbitrary times and ask again after the wait they were given
        now += gap
        while (wait := bucket.take(now)) > 0:
            now += max(wait, 1e-9)  # a real clock always moves on
        sent.append(now)
    assert _conforms(sent, rate, burst)


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=bursts, gaps=gaps)
def test_booked_turns_conform_and_each_waiter_waits_once(rate, burst, gaps):
    bucket, now, asked, turns = TokenBucket(rate, burst, 0.0), 0.0, [], []
    for gap in gaps:
        now += gap
        asked.append(now)
        turns.append(now + bucket.reserve(now))
    assert turns == sorted(turns)  # first booked, first served
    assert _conforms(turns, rate, burst)
    # and none waits longer than the bookings before it need: at most one token's time for each
    assert all(
        turn <= at + (k + 1) / rate + 1e-6 for k, (at, turn) in enumerate(zip(asked, turns, strict=True))
    )


def test_a_pause_holds_takes_and_bookings_and_ends_without_a_burst():
    bucket = TokenBucket(10, 5, 0.0)
    booked = bucket.reserve(0.0)
    bucket.pause(30, 1.0)
    assert booked == 0 and bucket.take(2.0) == pytest.approx(29.0)
    assert bucket.reserve(2.0) == pytest.approx(29.0 + 0.1)  # after the pause, one token's time
    assert bucket.take(31.0) > 0  # the pause piled up no tokens (and the booking above holds one)
    assert bucket.take(31.25) == 0


def test_no_rate_means_only_pauses_hold():
    bucket = TokenBucket(0, 1, 0.0)
    assert [bucket.take(0.0) for _ in range(100)] == [0.0] * 100
    assert bucket.reserve(0.0) == 0.0
    bucket.pause(5, 0.0)
    assert bucket.take(1.0) == pytest.approx(4.0) and bucket.reserve(1.0) == pytest.approx(4.0)


async def test_async_limiter_turns_are_spaced_by_the_rate_and_sleep_once(monkeypatch):
    limiter = AsyncRateLimiter(rate=50, burst=5, max_in_flight=4)
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        sleeps.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)
    sent: list[float] = []

    async def caller() -> None:
        await limiter.turn()
        async with limiter:
            sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(30)))
    sent = sorted(t - started for t in sent)
    assert sent[-1] >= (30 - 5) / 50 * 0.95  # the rate held
    assert _conforms(sent, 50, 5)
    # each of the 25 held back slept for its turn once; the send bucket let (nearly) all of them through
    assert len(sleeps) <= 25 + 5, sleeps


@settings(max_examples=300, deadline=None)
@given(
    cap=st.floats(min_value=0.5, max_value=60),
    waits=st.lists(st.floats(min_value=0.1, max_value=1e6), min_size=1, max_size=30),
    delays=st.lists(st.floats(min_value=0, max_value=200), min_size=1, max_size=30),
)
def test_the_answers_of_calls_in_flight_together_hold_the_connection_at_most_one_cap(cap, waits, delays):
    """Calls sent together, answered 429 one after another at any times (before, at or after the pause's
    end), each asking any wait: the connection is held at most ``cap`` in all, from the first answer."""
    bucket, sent = TokenBucket(0, 1, 0.0), 1.0
    answers = sorted(sent + d for d in delays)
    for at, wait in zip(answers, waits * len(answers), strict=False):
        bucket.pause(min(wait, cap), at, cap, sent)
    assert bucket.paused_until <= answers[0] + cap + 1e-9
    assert bucket.take(answers[0] + cap) == 0


def test_a_call_sent_after_a_pause_ended_may_start_the_next():
    bucket = TokenBucket(0, 1, 0.0)
    bucket.pause(2, 1.0, cap=2, sent=0.5)  # paused 1.0 .. 3.0
    bucket.pause(2, 3.5, cap=2, sent=0.9)  # the late answer of a call sent before it: nothing new
    assert bucket.take(3.5) == 0
    bucket.pause(2, 4.0, cap=2, sent=3.6)  # a call sent after it ended: the vendor still says wait
    assert bucket.take(4.5) == pytest.approx(1.5)


def test_a_late_answer_still_holds_the_rest_of_its_pauses_bound():
    """A late 429 (its call sent before a short pause began) asking more than that pause lasted: held on,
    up to the first answer's start + cap, not dropped."""
    bucket = TokenBucket(0, 1, 0.0)
    bucket.pause(1, 1.0, cap=10, sent=0.5)  # paused 1.0 .. 2.0
    bucket.pause(5, 2.5, cap=10, sent=0.9)  # asks 5 s: held until 7.5 (within 1.0 + 10)
    assert bucket.take(2.6) == pytest.approx(4.9)
    bucket.pause(60, 8.0, cap=10, sent=0.9)  # another late one: only up to 11.0, the bound of that pause
    assert bucket.take(8.0) == pytest.approx(3.0)
    assert bucket.take(11.0) == 0


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(min_value=0, max_value=1000),
    burst=bursts,
    steps=st.lists(
        st.tuples(st.sampled_from(["take", "reserve", "pause"]), st.floats(min_value=0, max_value=2)),
        max_size=60,
    ),
)
def test_next_free_is_the_turn_a_booking_would_get_and_changes_nothing(rate, burst, steps):
    bucket, now = TokenBucket(rate, burst, 0.0), 0.0
    for step, gap in steps:
        now += gap
        if step == "take":
            bucket.take(now)
        elif step == "reserve":
            bucket.reserve(now)
        else:
            bucket.pause(gap * 3, now, cap=5.0, sent=now)
        state = (bucket.tokens, bucket.stamp, bucket.paused_until, bucket.pause_start)
        free = bucket.next_free(now)
        assert (bucket.tokens, bucket.stamp, bucket.paused_until, bucket.pause_start) == state
        assert free - now == pytest.approx(bucket.reserve(now), rel=1e-9, abs=1e-9)


def test_book_takes_a_turn_only_when_it_comes_after_the_wait_asked():
    limiter = AsyncRateLimiter(rate=10, burst=2, max_in_flight=4)
    assert limiter.book(0.5) == -1.0  # a token is free now: nothing booked, the caller sleeps its 0.5 s
    assert limiter.book(0.0) == 0.0  # asked for now: booked (the first of the two tokens)
    for _ in range(10):  # the bucket goes 1 s into debt: the next free turn is ~1.1 s away
        limiter._schedule.reserve(time.monotonic())
    assert limiter.book(2.0) == -1.0  # sooner than the caller's wait: nothing booked
    booked = limiter.book(0.5)
    assert 0.5 <= booked <= 1.2  # later than the wait: booked, and the caller sleeps until it
    assert limiter._schedule.next_free(time.monotonic()) - time.monotonic() >= booked + 0.09  # taken


async def test_a_booked_sleep_and_the_call_after_it_wait_once_for_the_rate(monkeypatch):
    """The waits of a connection whose turns are booked past a poll: one sleep per look, and the rate
    held: the turn booked while sleeping serves the next call, which does not wait for another."""
    limiter = AsyncRateLimiter(rate=20, burst=1, max_in_flight=4)
    turns: list[float] = []
    real_turn = limiter.turn

    async def counting_turn() -> None:
        turns.append(time.monotonic())
        await real_turn()

    monkeypatch.setattr(limiter, "turn", counting_turn)
    sent: list[float] = []

    async def poller() -> None:  # as a trigger: book (or not) for the next poll, sleep once, then send
        for _ in range(3):
            delay = limiter.book(0.05)
            if delay < 0:
                await asyncio.sleep(0.05)
                await limiter.turn()
            else:
                await asyncio.sleep(delay)
            async with limiter:
                sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(poller() for _ in range(10)))
    sent = sorted(t - started for t in sent)
    assert _conforms(sent, 20, 1 + 1)  # the rate held (a token of slack for the loop's clock)
    assert sent[-1] >= (30 - 1) / 20 * 0.9
    # 30 calls; with every turn booked during the poll's sleep, only the first looks (a free token, nothing to
    # book) take a turn of their own
    assert len(turns) <= 12, f"{len(turns)} of 30 calls waited for a turn after their poll's sleep"
