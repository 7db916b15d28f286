"""t2i bench --workers: runs trained side by side in worker processes give the scores one process gives; a killed
bench leaves no worker training, and the same command finishes the sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from t2i.bench.config import BenchConfig, resolve
from t2i.bench.cost import cpu_seconds_per_step, logged_step, record_stage_time
from t2i.bench.workers import Job, JobFailed, run_side_by_side, share_done, worker_threads
from train.bench import expected_costs, run_progress

# two families, two seeds, two rungs: four runs for two workers
TINY = ["--quick", "--families=cvae,tgan", "--budget-flops=1e10", "--seeds=2", "--n=500", "--eval-prompts=4",
        "--novel-prompts=2", "--reference-images=64", "--cpu=true", "--ladder=1,2"]


def _bench(out: Path, work: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "train.bench", *TINY, f"--out={out}", f"--work={work}", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _scores(path: Path) -> str:
    """Every stage's metrics and FLOPs (wall-clock times left out), as sorted JSON."""
    results = json.loads(path.read_text())
    return json.dumps({name: {seed: [{k: v for k, v in st["metrics"].items() if k != "ms_per_image"}
                                     | {"flops": st["flops"]} for st in s["stages"]]
                              for seed, s in fam["seeds"].items()}
                       for name, fam in results["families"].items()}, sort_keys=True)


@pytest.mark.slow
def test_workers_killed_with_the_bench_and_the_rerun_scores_as_one_process(tmp_path):
    """One process on one thread, and --workers 2 (one thread each), train the same runs: the same scores. A kill -9
    of the bench while its workers train takes the workers with it (nothing trains on behind a rerun's back), and
    the same command then finishes with those scores."""
    serial = _bench(tmp_path / "serial", tmp_path / "serial-work")
    killed = _bench(tmp_path / "out", tmp_path / "work", "--workers=2")
    deadline, logs = time.time() + 900, []
    while len(logs) < 2:  # both workers have started a run
        assert killed.poll() is None and time.time() < deadline, killed.communicate()[0][-3000:]
        logs = [p for p in (tmp_path / "work").glob("*/*/bench_train.log") if "bench: training" in p.read_text()]
        time.sleep(0.2)
    workers = psutil.Process(killed.pid).children(recursive=True)
    assert len(workers) >= 2
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [p.cmdline() for p in alive]

    rerun = _bench(tmp_path / "out", tmp_path / "work", "--workers=2")
    log = rerun.communicate()[0]
    assert rerun.returncode == 0, log[-3000:]
    assert "side by side in 2 worker process(es)" in log and "[4 of 4 jobs]" in log
    assert serial.wait() == 0, serial.communicate()[0][-3000:]
    assert _scores(tmp_path / "out" / "results.json") == _scores(tmp_path / "serial" / "results.json")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "--workers 2: runs trained side by side" in report
    again = _bench(tmp_path / "out", tmp_path / "work", "--workers=2")  # all trained: no worker starts
    log = again.communicate()[0]
    assert again.returncode == 0 and "worker started" not in log, log[-3000:]


def _fails(message: str | int) -> None:
    print("about to fail")
    raise SystemExit(message)


def _sleeps(seconds: float) -> None:
    time.sleep(seconds)


def test_a_failing_job_stops_the_others_and_says_where_its_log_is(tmp_path):
    assert run_side_by_side([Job("exits 0", _fails, (0,), tmp_path / "zero.log")], 1, say=lambda line: None) > 0
    jobs = [Job("slow one", _sleeps, (120,), tmp_path / "slow.log"),
            Job("bad one", _fails, ("--data: no such folder 'nowhere'",), tmp_path / "bad.log")]
    start = time.perf_counter()
    with pytest.raises(JobFailed) as err:
        run_side_by_side(jobs, workers=2, say=lambda line: None)
    message = str(err.value)
    assert "bad one failed in its worker" in message and str(tmp_path / "bad.log") in message
    assert "no such folder 'nowhere'" in message and "\n" not in message
    assert time.perf_counter() - start < 60  # the sleeping worker was killed, not waited for
    assert "about to fail" in (tmp_path / "bad.log").read_text()


def _writes(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def test_the_costliest_jobs_start_first(tmp_path):
    """One worker runs the jobs one after another: in falling cost, ties in the order given."""
    order = tmp_path / "order.txt"
    jobs = [Job(name, _writes, (str(order), name), tmp_path / f"{name}.log", cost=cost)
            for name, cost in (("small", 1.0), ("big", 9.0), ("medium", 5.0), ("medium too", 5.0))]
    run_side_by_side(jobs, workers=1, say=lambda line: None)
    assert order.read_text().split("\n")[:-1] == ["big", "medium", "medium too", "small"]


def test_runs_are_ordered_by_their_recorded_seconds_when_every_run_has_them(tmp_path):
    """A sweep extended by a rung gives every family the same FLOPs left, but latent diffusion's steps take longer:
    the workers' order must follow the runs' recorded CPU seconds per step, not FLOPs (which left the slowest runs
    for last, one worker training alone at the end)."""
    slow, fast = tmp_path / "ldm", tmp_path / "cvae"
    for folder, seconds in ((slow, 40.0), (fast, 10.0)):
        folder.mkdir()
        record_stage_time(folder, 100, seconds, seconds)
        record_stage_time(folder, 200, seconds, seconds)
    assert cpu_seconds_per_step(slow, [100, 200]) == pytest.approx(0.4)
    assert cpu_seconds_per_step(slow, [100, 200, 400]) is None  # the rung to come has no record yet
    assert cpu_seconds_per_step(slow, []) is None  # a run not started
    seconds = [cpu_seconds_per_step(f, [100, 200]) * 200 for f in (fast, slow)]
    assert expected_costs([2.6e13, 2.5e13], seconds) == [20.0, 80.0]  # slow first, though it has fewer FLOPs
    assert expected_costs([2.6e13, 2.5e13], [seconds[0], None]) == [2.6e13, 2.5e13]  # one unknown: FLOPs for all


def test_the_progress_bar_weighs_each_job_by_its_cost():
    """The bar's share: finished jobs whole, running ones by their progress, each weighted by its expected cost."""
    jobs = [Job("big", _sleeps, cost=3.0, progress=lambda: 0.5), Job("small", _sleeps, cost=1.0),
            Job("queued", _sleeps, cost=4.0, progress=lambda: 0.0)]
    assert share_done(jobs, finished=set()) == pytest.approx(1.5 / 8)
    assert share_done(jobs, finished={1}) == pytest.approx(2.5 / 8)
    assert share_done(jobs, finished={0, 1, 2}) == 1.0
    jobs[2].cost = 0.0  # a cost unknown: every job weighs the same
    jobs[2].progress = lambda: 1.7  # a progress past the end counts whole, no more
    assert share_done(jobs, finished=set()) == pytest.approx(1.5 / 3)


def test_a_runs_progress_is_read_from_the_steps_its_trainer_logged(tmp_path):
    """Read while the trainer appends: a half-written last row is passed over; no log yet is no progress."""
    assert logged_step(tmp_path / "metrics.jsonl") is None and run_progress(tmp_path, 100, 300) == 0.0
    rows = "".join(json.dumps({"step": s, "loss": 0.1}) + "\n" for s in range(10, 210, 10))
    (tmp_path / "metrics.jsonl").write_text(rows + '{"step": 21')
    assert logged_step(tmp_path / "metrics.jsonl") == 200
    assert run_progress(tmp_path, 100, 300) == 0.5  # resumed at step 100 of this invocation's 100 -> 300
    assert run_progress(tmp_path, 250, 300) == 0.0  # rows left from before the resume point count nothing


def _logs_steps(path: str, steps: int) -> None:
    with open(path, "a") as f:
        for step in range(10, steps + 1, 10):
            f.write(json.dumps({"step": step}) + "\n")


def test_the_bar_ends_full_when_the_jobs_finish(tmp_path, capsys):
    folders = [tmp_path / "a", tmp_path / "b"]
    jobs = [Job(f.name, _logs_steps, (str(f / "metrics.jsonl"), 100), f / "job.log", cost=1.0,
                progress=lambda f=f: run_progress(f, 0, 100)) for f in folders]
    for f in folders:
        f.mkdir()
    run_side_by_side(jobs, workers=2, poll_seconds=0.1)
    out = capsys.readouterr()
    assert "bench: training: 100%" in out.err and "[2 of 2 jobs]" in out.out


def test_worker_lines_reach_a_log_file_while_the_jobs_run(tmp_path):
    """Regression: the lines above the bar went through tqdm.write, which does not flush, so a bench writing to a
    file (nohup ... > LOG) showed "worker started" only when its buffer filled, hours later."""
    code = ("from tests.test_bench_workers import _sleeps; from t2i.bench.workers import Job, run_side_by_side; "
            f"run_side_by_side([Job('sleeper', _sleeps, (30,), __import__('pathlib').Path({str(tmp_path)!r}) / 'j.log')], 1)")
    with open(tmp_path / "out.log", "w") as out:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a file's stdout is block-buffered
        bench = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.DEVNULL, env=env,
                                 cwd=Path(__file__).resolve().parents[1])
        try:
            deadline = time.time() + 25
            while "worker started: sleeper" not in (tmp_path / "out.log").read_text():
                assert bench.poll() is None and time.time() < deadline, "the line came only at the end, or never"
                time.sleep(0.2)
        finally:
            bench.kill()
            bench.wait()


def _draws_a_bar_and_sleeps(seconds: float) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=2, desc="sleeping") as bar:
        bar.update(1)
        time.sleep(seconds)


def test_an_interrupted_bench_leaves_no_semaphores_for_the_resource_tracker(tmp_path):
    """Regression: each worker's progress bar made tqdm's multiprocessing lock (a named semaphore); the workers of an
    interrupted bench are killed, so the bench ended with "resource_tracker: There appear to be 3 leaked semaphore
    objects to clean up at shutdown" on every Ctrl-C."""
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "  # a shell's background job
            # (CI's `... &`) starts with SIGINT ignored, and Python keeps it so: Ctrl-C as in a terminal
            "from tests.test_bench_workers import _draws_a_bar_and_sleeps as f; from pathlib import Path; "
            "from t2i.bench.workers import Job, run_side_by_side; "
            f"run_side_by_side([Job(str(n), f, (60,), Path({str(tmp_path)!r}) / f'{{n}}.log') for n in (1, 2)], 2)")
    bench = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 60
    while not all((tmp_path / f"{n}.log").is_file() and "sleeping" in (tmp_path / f"{n}.log").read_text()
                  for n in (1, 2)):
        assert bench.poll() is None and time.time() < deadline, bench.communicate()[1][-3000:]
        time.sleep(0.2)
    bench.send_signal(signal.SIGINT)
    err = bench.communicate(timeout=60)[1]
    assert "KeyboardInterrupt" in err, err[-3000:]
    assert "leaked semaphore" not in err, err[-3000:]


def _child_writes(path: str) -> None:
    Path(path).write_text("child ran")


def _starts_a_child(path: str) -> None:
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=_child_writes, args=(path,))
    child.start()
    child.join()


def test_a_job_may_start_processes_of_its_own(tmp_path):
    """Regression: workers were daemonic, and a daemonic process may not have children, so a trainer given
    --num-workers=2 (DataLoader worker processes) failed inside a bench worker."""
    run_side_by_side([Job("loader", _starts_a_child, (str(tmp_path / "out.txt"),), tmp_path / "job.log")], 1,
                     say=lambda line: None)
    assert (tmp_path / "out.txt").read_text() == "child ran"


def test_workers_share_the_threads_and_are_checked():
    assert worker_threads(2, threads=2) == 1 and worker_threads(4, threads=16) == 4 and worker_threads(3, threads=2) == 1
    with pytest.raises(ValueError, match="--workers"):
        resolve(BenchConfig(quick=True, workers=0))


@pytest.mark.slow
def test_workers_without_a_ladder_train_each_run_once(tmp_path):
    """Regression: without --ladder or --reuse a bench does not resume, and its own serial pass deleted the folders
    its workers had just trained and trained them again."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-m", "train.bench", "--quick", "--families=cvae", "--budget-flops=1e10",
                          "--seeds=2", "--n=500", "--eval-prompts=4", "--novel-prompts=2", "--reference-images=64",
                          "--cpu=true", "--workers=2", f"--out={tmp_path / 'out'}", f"--work={tmp_path / 'work'}"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "[2 of 2 jobs]" in run.stdout and "bench: training cvae" not in run.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["families"]["cvae"]["seeds"]) == 2
