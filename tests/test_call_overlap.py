"""``calls.overlap.InOrder``: items run on a few threads, their results taken in the order the
items were given, never more than ``workers`` in flight, and nothing left running after an
error."""

from __future__ import annotations

import threading
import time

import pytest

from multimodal_emotion.calls.overlap import InOrder


def test_results_are_taken_in_order_even_when_later_items_finish_first():
    taken: list[tuple[int, int]] = []
    lock, inside, most = threading.Lock(), [0], [0]

    def run(i: int) -> int:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.03 if i % 2 == 0 else 0.0)  # even items are the slow ones
        with lock:
            inside[0] -= 1
        return i * i

    with InOrder(run, lambda i, r: taken.append((i, r)), workers=2) as pool:
        for i in range(7):
            pool.submit(i)
            assert len(taken) >= i + 1 - 2  # at most two still in flight
        pool.drain()
    assert taken == [(i, i * i) for i in range(7)]
    assert most[0] == 2
    assert threading.current_thread() is threading.main_thread()


def test_one_worker_runs_each_item_at_once_on_the_callers_thread():
    seen: list[str] = []
    with InOrder(lambda i: threading.current_thread().name, lambda i, r: seen.append(r),
                 workers=1) as pool:
        pool.submit(0)
        assert seen == [threading.current_thread().name]


def test_an_error_reaches_the_caller_and_no_thread_is_left_running():
    started: list[int] = []

    def run(i: int) -> int:
        started.append(i)
        if i == 1:
            raise ValueError("bad group")
        time.sleep(0.02)
        return i

    with pytest.raises(ValueError, match="bad group"):
        with InOrder(run, lambda i, r: None, workers=2) as pool:
            for i in range(10):
                pool.submit(i)
    assert max(started) < 4  # items after the error were never started
    assert not [t for t in threading.enumerate() if t.name.startswith("mer-turns")]


def test_workers_must_be_a_positive_whole_number():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="workers"):
            InOrder(lambda i: i, lambda i, r: None, workers=bad)  # type: ignore[arg-type]
