"""App latency on the built-in models, as a user meets it: `t2i app` started, then 4-image requests.

Ready = from launching `t2i app` (a fresh Python process: imports, models, UI, server) until
the page answers; request = a `gradio_client` call of `/generate` for 4 images from both
models with the diffusion model's own default sampler, steps and guidance, round trip
included (median of 5 seeds). Needs the test extra (`gradio_client`).

    python -m benchmarks.app_latency            # prints a table; append it to benchmarks/RESULTS.md by hand
    python -m benchmarks.app_latency --diffusion shapes-ldm --repeats 9   # another diffusion model in the app
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gradio_client import Client


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, limit: float = 300.0) -> None:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"t2i app exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"t2i app not ready after {limit:.0f} s")


def main(argv: list[str] | None = None) -> None:
    from apps.app import AppConfig
    from t2i.builtin import resolve
    from t2i.diffusion.options import load_sampling_options

    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", default=AppConfig.diffusion, help="the app's diffusion model (default: the app's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests (seeds 0, 1, ...)")
    args = parser.parse_args(argv)
    defaults = load_sampling_options(resolve(args.diffusion))  # what the app's controls start at
    sampler, steps, guidance = defaults.sampler, defaults.num_inference_steps, defaults.guidance_scale
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "train.cli", "app", "--port", str(port), "--diffusion", args.diffusion],
                            cwd=Path(__file__).parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(url, proc)
        ready = time.perf_counter() - start
        client = Client(url, verbose=False)
        rows = []
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            *_, summary, _ = client.predict("a small red circle in the center", "", seed, False, 4, sampler, steps,
                                            guidance, False, api_name="/generate")
            rows.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    print(f"| ready (`t2i app` launched until the page answers) | 4-image request for both models via gradio_client "
          f"(median of {args.repeats}; `{args.diffusion}`, {steps} {sampler} steps, guidance {guidance:g}) | "
          f"slowest of {args.repeats} |")
    print("| --- | --- | --- |")
    print(f"| {ready:.1f} s | {statistics.median(rows):.2f} s | {max(rows):.2f} s |")
    print("last summary:\n" + str(summary))


if __name__ == "__main__":
    main()
