"""Training runs side by side in worker processes (``t2i bench --workers N``).

A sweep's runs (every family and seed, and every tuning trial) are independent once their first stage
exists, so they can train at once: a machine with many cores, or a GPU that one small run leaves
mostly idle, trains several; on a small CPU, single-thread processes of these small models get more
steps done than one process spreading each step over every thread (``benchmarks/RESULTS.md``).

Each job is one freshly spawned process (``multiprocessing``'s spawn start: no forked torch or
thread-pool state) that sets its torch threads, writes everything it prints to its own log file and
dies with its parent (Linux ``PR_SET_PDEATHSIG``): a bench killed with ``kill -9`` leaves no run
training behind its back, and the same command run again resumes every run from its last finished
stage or segment. A job that fails stops the others and raises ``JobFailed``: one line with the end of its log.
While the jobs run, one progress bar over all of them (each job's ``progress``, weighted by its ``cost``) says how
much of this invocation's training is done and, from its rate, about how long is left.

    python -c "from t2i.bench.workers import demo; demo()"
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent exits (linux/prctl.h)


class JobFailed(RuntimeError):
    """A job's worker exited with an error; the message is one line naming the job, its log and the log's end."""


@dataclass
class Job:
    """One call to run in a worker: ``fn(*args)``, its output appended to ``log``."""

    name: str  # what it is, for progress lines and errors, e.g. "cvae (lr 0.001, seed 1)"
    fn: Callable[..., Any]  # a module-level function (the spawned process imports it by name)
    args: tuple = ()
    log: Path = field(default_factory=Path)
    cost: float = 0.0  # expected work (CPU seconds or training FLOPs left): the costliest jobs start first
    progress: Callable[[], float] | None = None  # share of the job done (0..1), read by the parent for its bar


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent exits (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def _run_job(fn: Callable[..., Any], args: tuple, log: str, threads: int, parent: int) -> None:
    """A worker's body: threads, output to the log, die with the parent, run; exit 1 on any error (in the log)."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    import torch
    from tqdm.std import tqdm as every_tqdm

    torch.set_num_threads(threads)
    # A lock of this process alone for its progress bars: tqdm's default adds a named semaphore, which a worker
    # killed with its interrupted bench leaves to the resource tracker ("leaked semaphore objects" at exit).
    every_tqdm.set_lock(threading.RLock())
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", buffering=1) as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            fn(*args)
        except SystemExit as done:
            if done.code not in (0, None):  # a trainer's one-line error: into the log
                print(done, file=sys.stderr, flush=True)
                os._exit(1)
        except BaseException:  # noqa: BLE001 - anything else: its traceback into the log
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    sys.stdout.flush()


def worker_threads(workers: int, threads: int | None = None) -> int:
    """Torch threads of each of ``workers`` processes: this process's threads (``threads``) shared out, at least 1."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return max(1, threads // workers)


def _log_tail(log: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log (progress bars' carriage returns split too)."""
    if not log.is_file():
        return "(no log)"
    text = log.read_text(errors="replace").replace("\r", "\n")
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


def share_done(jobs: list[Job], finished: set[int]) -> float:
    """The share (0..1) of ``jobs`` done: finished jobs (their indices) count whole, the others by their
    ``progress`` (none: nothing yet), each weighted by its ``cost`` (all equal when any cost is not positive)."""
    weights = [j.cost for j in jobs] if all(j.cost > 0 for j in jobs) else [1.0] * len(jobs)
    done = 0.0
    for i, (job, weight) in enumerate(zip(jobs, weights)):
        part = 1.0 if i in finished else job.progress() if job.progress is not None else 0.0
        done += weight * min(max(part, 0.0), 1.0)
    return done / sum(weights) if jobs else 1.0


def run_side_by_side(jobs: list[Job], workers: int, threads: int | None = None,
                     say: Callable[[str], None] | None = None, poll_seconds: float = 15.0) -> float:
    """Run ``jobs`` in at most ``workers`` processes at once, each on ``worker_threads`` torch threads, the costliest
    first (longest-processing-time-first, Graham 1969: no long job is left to run alone at the end while the
    other workers idle; equal costs keep their order). Every ``poll_seconds`` a progress bar over all the jobs
    (``share_done``, in percent) is brought up to date. Lines go to ``say`` (default: printed above the bar).
    Returns the wall seconds. A failed job kills the running ones and raises ``JobFailed``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    per_job = worker_threads(workers, threads)
    ctx = multiprocessing.get_context("spawn")
    queue = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)  # indices into jobs
    running, finished, start = {}, set(), time.perf_counter()
    bar = tqdm(total=100.0, desc="bench: training", unit="%", mininterval=poll_seconds,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} so far, about {remaining} left")

    def above_bar(line: str) -> None:
        bar.write(line)
        sys.stdout.flush()  # tqdm.write does not: a log file would get the line only when its buffer fills

    say = say or above_bar
    try:
        while queue or running:
            while queue and len(running) < workers:
                i = queue.pop(0)
                job = jobs[i]
                proc = ctx.Process(target=_run_job, args=(job.fn, job.args, str(job.log), per_job, os.getpid()),
                                   name=f"bench-{job.name}")  # not daemonic: a trainer's DataLoader workers
                proc.start()
                running[proc.sentinel] = (proc, i, time.perf_counter())
                say(f"bench: worker started: {job.name} ({per_job} torch thread(s); log: {job.log})")
            for sentinel in wait(list(running), timeout=poll_seconds):
                proc, i, began = running.pop(sentinel)
                job = jobs[i]
                proc.join()
                if proc.exitcode != 0:
                    raise JobFailed(f"{job.name} failed in its worker (exit code {proc.exitcode}); its log "
                                     f"{job.log} ends: {_log_tail(job.log)}. Fix that and run the same command again: "
                                     "finished stages are kept")
                finished.add(i)
                say(f"bench: worker finished: {job.name} in {(time.perf_counter() - began) / 60:.1f} min "
                    f"[{len(finished)} of {len(jobs)} jobs]")
            bar.update(100.0 * share_done(jobs, finished) - bar.n)
    finally:
        bar.close()
        for proc, _, _ in running.values():  # a failure or an interrupt: stop the rest (they resume on a rerun)
            proc.kill()
            proc.join()
    return time.perf_counter() - start


def _demo_job(n: int) -> None:
    import torch

    print(f"job {n}: {torch.get_num_threads()} thread(s), sum {sum(range(n))}")


def demo() -> None:
    logs = Path("/tmp/bench_workers_demo")
    jobs = [Job(f"job {n}", _demo_job, (n,), logs / f"{n}.log") for n in (10, 20, 30)]
    print(f"{run_side_by_side(jobs, workers=2):.1f} s;", [(logs / f"{n}.log").read_text().strip() for n in (10, 20, 30)])
