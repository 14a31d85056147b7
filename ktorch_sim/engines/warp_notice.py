"""What Warp says at start-up: a line while kernels compile, and no CUDA-driver warning on a CPU run.

Compiling: Warp compiles a module's kernels the first time they run and caches them on disk, so
the first run on a machine spends tens of seconds (measured on a 2-core CPU: docs/benchmarks.md)
before the first step. :func:`compile_notice` wraps such a first call: when it is still running
after ``KTORCH_SIM_WARP_NOTICE_S`` seconds (default 1; 0 announces at once) it prints one line
saying what is happening, and when it ends, how long it took. A warm start (cached kernels) takes
less than the threshold and prints nothing.

The CUDA-driver warning: ``wp.init()`` always probes for the CUDA driver, and on a machine without
one the native library prints "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"
straight to file descriptor 2. Warp 1.19 has no setting that skips the probe (``wp_init`` calls
``cuda_init`` unconditionally), so :func:`init_quietly` filters that one line out of what
``wp.init()`` writes to stderr when the caller asked for the CPU; every other line is passed on.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["CUDA_DRIVER_WARNING", "compile_notice", "filtered_stderr", "init_quietly", "notice_threshold"]

CUDA_DRIVER_WARNING = "Could not find or load the NVIDIA CUDA driver"
NOTICE_ENV = "KTORCH_SIM_WARP_NOTICE_S"


def notice_threshold() -> float:
    """Seconds a first call may take before the compile line appears (``$KTORCH_SIM_WARP_NOTICE_S``, default 1)."""
    try:
        return float(os.environ.get(NOTICE_ENV, "1.0"))
    except ValueError:
        return 1.0


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def compile_notice(what: str, device: str, cache_dir: str | None, threshold: float | None = None,
                   write: Callable[[str], None] = _stderr_line) -> Iterator[None]:
    """Announce a slow first call of ``what`` (kernels compiling) and report its duration when it ends."""
    threshold = notice_threshold() if threshold is None else threshold
    start = time.perf_counter()
    announced = threading.Event()
    lock = threading.Lock()

    def announce() -> None:
        with lock:
            if announced.is_set():
                return
            announced.set()
        where = f"; cached in {cache_dir}" if cache_dir else ""
        write(f"Warp: compiling the {what} kernels for {device} (the first run on a machine only{where}) ...")

    timer = threading.Timer(threshold, announce) if threshold > 0 else None
    if timer is None:
        announce()
    else:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        with lock:
            done = announced.is_set()
            announced.set()  # a timer firing now stays quiet
        if done:
            write(f"Warp: {what} kernels ready in {time.perf_counter() - start:.1f} s")


@contextmanager
def filtered_stderr(drop: str) -> Iterator[None]:
    """Capture what is written to file descriptor 2 in the block; re-emit every line not containing ``drop``."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if drop not in line)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def init_quietly(init: Callable[[], None], cpu_only: bool) -> None:
    """Run ``init`` (``wp.init``); on a CPU-only request, without the CUDA-driver warning."""
    if not cpu_only:
        init()
        return
    with filtered_stderr(CUDA_DRIVER_WARNING):
        init()
