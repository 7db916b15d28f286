"""App under load: 20 clients x 25 `/generate` requests against a launched `t2i app`, as users meet it.

Checks what issue 14 asked: 0 errors; every answer points to complete image files (each one
decodes); seeds reproduce (all answers for one seed are pixel-identical, also to a request made
alone afterwards); the server's memory stays flat (resident memory after a warm-up, at the
peak and at the end); the outputs folder stays under its cap. Clients draw seeds from a small
pool, so many concurrent answers hold the same images (the case that used to hand out empty
files). Needs the test extra (`gradio_client`).

    python -m benchmarks.app_load                        # built-in models, 20 x 25
    python -m benchmarks.app_load --clients 4 --requests 5 --gan runs/tgan/model --diffusion runs/ldm
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from gradio_client import Client
from PIL import Image

from benchmarks.app_latency import free_port, wait_until_up

PROMPTS = ["a small red circle in the center", "a large blue square in the top left",
           "a green circle above a magenta square"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class BadFile(Exception):
    """An answer pointed to a missing, empty or truncated image file."""


def pixels(entry) -> np.ndarray:
    """A gallery entry -> its pixels; BadFile if the file is missing, empty or truncated."""
    path = entry["image"] if isinstance(entry, dict) else entry[0]
    path = path["path"] if isinstance(path, dict) else path
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except Exception as err:
        raise BadFile(f"{path}: {type(err).__name__}: {err}") from None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=25, help="requests per client")
    p.add_argument("--seeds", type=int, default=10, help="size of the pool the clients draw seeds from")
    p.add_argument("--n", type=int, default=2, help="images per model per request")
    p.add_argument("--steps", type=int, default=4, help="diffusion steps per request")
    p.add_argument("--gan", default="shapes-tgan")
    p.add_argument("--diffusion", default="shapes-ldm")
    p.add_argument("--max-outputs-mb", type=float, default=8.0, help="the app's --max-outputs-mb (small: pruning runs)")
    args = p.parse_args(argv)

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    outputs = Path(tempfile.mkdtemp(prefix="t2i-app-load-"))
    command = [sys.executable, "-m", "train.cli", "app", "--port", str(port), "--gan", args.gan, "--diffusion",
               args.diffusion, "--outputs", str(outputs), "--max-outputs-mb", str(args.max_outputs_mb)]
    proc = subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    samples: list[float] = []
    stop = threading.Event()
    try:
        wait_until_up(url, proc)

        def request(client: Client, seed: int) -> tuple[int, list[np.ndarray], float]:
            t0 = time.perf_counter()
            gan, diffusion, _, seed_used, _, _ = client.predict(  # the 3rd: the off-vocabulary warning
                PROMPTS[seed % len(PROMPTS)], "", seed, False, args.n, "dpm-solver++", args.steps, 5.0, False,
                api_name="/generate")
            elapsed = time.perf_counter() - t0
            assert seed_used == seed, (seed_used, seed)
            return seed, [pixels(e) for e in gan + diffusion], elapsed

        warm = Client(url, verbose=False)
        for seed in range(2):
            request(warm, seed)
        rss_start = rss_mb(proc.pid)

        def watch() -> None:
            while not stop.is_set():
                samples.append(rss_mb(proc.pid))
                stop.wait(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def client_job(c: int) -> tuple[list, list[str], list[str]]:
            client = Client(url, verbose=False)
            answers, errors, bad_files = [], [], []
            for r in range(args.requests):
                seed = (c * args.requests + r) % args.seeds
                try:
                    answers.append(request(client, seed))
                except BadFile as err:
                    bad_files.append(f"client {c} request {r}: {err}")
                except Exception as err:  # counted, not raised: the figure is the number of errors
                    errors.append(f"client {c} request {r}: {type(err).__name__}: {err}")
            return answers, errors, bad_files

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(client_job, range(args.clients)))
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join()
        rss_end = rss_mb(proc.pid)
        answers = [a for done, _, _ in results for a in done]
        errors = [e for _, failed, _ in results for e in failed]
        bad_files = [e for _, _, bad in results for e in bad]

        by_seed: dict[int, list[list[np.ndarray]]] = {}
        for seed, images, _ in answers:
            by_seed.setdefault(seed, []).append(images)
        mismatched = sum(any(not np.array_equal(a, b) for a, b in zip(group[0], other))
                         for group in by_seed.values() for other in group[1:])
        alone = Client(url, verbose=False)
        not_reproduced = sum(any(not np.array_equal(a, b) for a, b in zip(request(alone, seed)[1], group[0]))
                             for seed, group in by_seed.items())
        latencies = sorted(t for _, _, t in answers)
        size_mb = sum(f.stat().st_size for f in outputs.rglob("*") if f.is_file()) / 1e6
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    total = args.clients * args.requests
    print(f"`python -m benchmarks.app_load --clients {args.clients} --requests {args.requests}` — {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; models {args.gan} + {args.diffusion}; {args.n} images per model, "
          f"{args.steps} dpm-solver++ steps; seeds from a pool of {args.seeds}\n")
    print("| requests | errors | answers with a missing/empty/truncated file | same-seed answers differing | "
          "seeds not reproduced alone | median / p95 latency | wall | server RSS after warm-up / peak / end | "
          "outputs folder (cap) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {total} | {len(errors)} | {len(bad_files)} | {mismatched} | {not_reproduced} | "
          f"{statistics.median(latencies):.2f} s / {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s | {wall:.0f} s | "
          f"{rss_start:.0f} / {max(samples, default=rss_end):.0f} / {rss_end:.0f} MB | {size_mb:.1f} MB "
          f"({args.max_outputs_mb:g} MB) |")
    for line in (errors + bad_files)[:5]:
        print("error:", line)


if __name__ == "__main__":
    main()
