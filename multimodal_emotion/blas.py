"""numpy's matrix products on one thread once a recognizer is loaded: same answers on any
machine, and no core lost to threads that wait by spinning.

Why, measured on the 5-minute stereo bench call (48 turns, 2 cores):

* **Answers that depend on the core count.** numpy's OpenBLAS splits a product differently on
  one thread and on two, so the mel filterbank product in faster-whisper's feature extractor
  differs in its last bits; tiny.en's greedy decoding turns such bits into other words: 6 of
  the 48 transcripts changed (one fused label) between one and two BLAS threads, while each
  setting gave the same answers run after run. The thread count OpenBLAS picks is the
  machine's core count, so the same clip could read differently on machines with different
  core counts.
* **A spinning core.** After each product OpenBLAS's idle workers busy-wait for a while
  before they sleep: in the turn finder's pass a second thread burned 4.2 s of CPU beside
  4.1 s of work, and in a call that core is taken from torch and CTranslate2. On one thread
  the emotion pass took 14.5-14.7 s instead of 15.2-16.3 s.

The products involved are small (80 x 201 by the clip's frames), so one thread costs nothing.
The limit is process-wide (OpenBLAS has one setting), kept for the rest of the process;
``threadpoolctl.threadpool_limits`` sets it back for a caller who wants its own numpy on more
threads (with the answers then depending on the machine again).
"""

from __future__ import annotations

BLAS_THREADS = 1


def use_one_blas_thread() -> None:
    """Limit numpy's BLAS (OpenBLAS, MKL) to :data:`BLAS_THREADS` for this process. Torch's and
    CTranslate2's own thread pools are untouched."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(BLAS_THREADS, user_api="blas")
