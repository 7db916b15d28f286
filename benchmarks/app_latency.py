"""App latency on the built-in models, as a user meets it: `t2i app` started, then 4-image requests.

Ready = from launching `t2i app` (a fresh Python process: imports, models, UI, server) until
the page answers; request = a `gradio_client` call of `/generate` for 4 images from both
models with the diffusion model's own default sampler, steps and guidance, round trip
included (median of 5 seeds). Needs the test extra (`gradio_client`).

``--breakdown`` says where each request's time goes: the server's own phases (gradio's profiling,
``GRADIO_PROFILING=1``: queue wait, preprocess, the handler, postprocess), the models inside the
handler (the app's summary), the event stream back to the client, and the file downloads, timed as
gradio_client makes them (a fresh httpx client per file, which loads the CA bundle even for plain
http), without that TLS set-up (``ssl_verify=False``) and over one kept-alive connection (as a
browser does); plus the CPU seconds of the server and of the client per request (steadier than wall
time on a shared machine). ``--against DIR`` starts a second app from another checkout (e.g. the
main branch) and alternates requests between the two, so both see the same load; ``--against-diffusion
MODEL`` gives that app another diffusion model (default: the same), so two models are compared in one run
(``--against .`` for two apps of this checkout).

``--browser`` times the request as a person meets it instead: the app's page open in headless
Chromium (playwright driving the system's ``chromium``; ``pip install playwright``, ``apt-get install
chromium``, no browser download), the seed typed in, Generate clicked, and the clock stopped when
all 8 new images are decoded in both galleries (``performance.now()`` in the page, so no driver
round trip is counted). The browser fetches the files over its kept-alive connections. A second table
gives per request the models' seconds (the app's summary) and the CPU seconds of the app's process and
of the browser (every Chromium process and playwright's driver): on one machine they share its cores.
With ``--against`` both apps are tabs of one Chromium.

    python -m benchmarks.app_latency            # prints a table; append it to benchmarks/RESULTS.md by hand
    python -m benchmarks.app_latency --diffusion shapes-ldm --repeats 9   # another diffusion model in the app
    python -m benchmarks.app_latency --repeats 9 --breakdown --against /work/main   # old vs this checkout
    python -m benchmarks.app_latency --repeats 9 --browser   # click to 8 images shown, in Chromium
    python -m benchmarks.app_latency --repeats 11 --browser --against . --against-diffusion shapes-ldm-fast  # two models
    python -m benchmarks.app_latency --repeats 11 --browser --against . --against-app-options=--compile  # an app option
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Sequence

import httpx
from gradio_client import Client

PROMPT = "a small red circle in the center"
# resolves with the milliseconds from the click until both galleries show `count` new, decoded images
CLICK_UNTIL_SHOWN = """([count, limit]) => new Promise((resolve, reject) => {
  const images = (id) => [...document.querySelectorAll(`#${id} img`)].filter((i) => i.src.includes("/file="));
  const before = new Set([...images("gan-gallery"), ...images("diffusion-gallery")].map((i) => i.src));
  const t0 = performance.now();
  document.querySelector("#generate").click();
  const check = () => {
    const shown = [images("gan-gallery"), images("diffusion-gallery")];
    if (shown.every((g) => g.length >= count && g.every((i) => i.complete && i.naturalWidth > 0 && !before.has(i.src)))) {
      resolve(performance.now() - t0);
    } else if (performance.now() - t0 > limit) {
      reject(new Error("no new images after " + limit + " ms"));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})"""


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_entries(value) -> list[dict]:
    """Every gradio FileData dict in a prediction (galleries nest them)."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and value.get("meta", {}).get("_type") == "gradio.FileData":
            return [value]
        return [e for v in value.values() for e in file_entries(v)]
    if isinstance(value, (list, tuple)):
        return [e for v in value for e in file_entries(v)]
    return []


def model_seconds(summary: str) -> float:
    """Seconds of both models in the app's summary table: its Markdown (``| model | 0.41 s | ...``, from
    gradio_client) or the page's text of it (cells separated by tabs, from the browser)."""
    total = 0.0
    for line in summary.splitlines():
        cells = [c.strip() for c in re.split(r"[|\t]", line.strip().strip("|"))]
        if len(cells) >= 2 and re.fullmatch(r"[0-9.]+ s", cells[1]):
            total += float(cells[1][:-2])
    return total


class App:
    """One `t2i app` process from ``checkout``, and a client of it."""

    def __init__(self, label: str, checkout: Path, diffusion: str, breakdown: bool, ssl_verify: bool = True,
                 browser=None, options: Sequence[str] = ()):
        from t2i.builtin import resolve
        from t2i.diffusion.options import load_sampling_options

        self.label, self.breakdown, self.ssl_verify = label, breakdown, ssl_verify
        self.diffusion = diffusion
        self.options = load_sampling_options(resolve(diffusion))  # what the app's controls start at
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        env = dict(os.environ, PYTHONPATH=str(checkout), **({"GRADIO_PROFILING": "1"} if breakdown else {}))
        start = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "train.cli", "app", "--port", str(port),
                                      "--diffusion", diffusion, *options], cwd=checkout, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.rows: list[dict[str, float]] = []
        try:
            wait_until_up(self.url, self.proc)
        except BaseException:
            self.close()
            raise
        self.ready = time.perf_counter() - start
        try:
            self.page = self.open_page(browser) if browser is not None else None
        except BaseException:
            self.proc.terminate()
            raise
        # as a user calls it (downloads every file); --breakdown times the downloads itself
        self.client = Client(self.url, verbose=False, ssl_verify=ssl_verify,
                             **({"download_files": False} if breakdown else {}))
        self.http = httpx.Client(timeout=60)

    def open_page(self, browser):
        """The app's page, a tab of ``browser`` (the page's controls start at the model's defaults)."""
        page = browser.new_page()
        page.goto(self.url)
        page.wait_for_selector("#generate")
        return page

    def click(self, seed: int) -> str:
        """Type the seed, click Generate, and time until the 8 new images are shown (in the page's clock)."""
        self.page.get_by_label("Seed", exact=True).fill(str(seed))
        self.page.get_by_label("Seed", exact=True).blur()
        before = self.page.inner_text("#summary")
        server0, browser0 = cpu_seconds(self.proc.pid), self.browser_cpu_seconds()
        shown = self.page.evaluate(CLICK_UNTIL_SHOWN, [4, 60_000]) / 1000
        self.page.wait_for_function("(before) => document.querySelector('#summary').innerText !== before", arg=before)
        summary = self.page.inner_text("#summary")
        self.rows.append({"request": shown, "models": model_seconds(summary),
                          "server CPU": cpu_seconds(self.proc.pid) - server0,
                          "browser CPU": self.browser_cpu_seconds() - browser0})
        return summary

    def browser_cpu_seconds(self) -> float:
        """CPU seconds so far of every process this benchmark started except the app: Chromium's processes
        and playwright's driver (the CPU the browser takes from the 2 cores the app runs on)."""
        import psutil

        server = {self.proc.pid} | {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        total = 0.0
        for proc in psutil.Process().children(recursive=True):
            if proc.pid not in server:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        return total

    def request(self, seed: int) -> str:
        """One 4-image request at the diffusion model's own defaults (the page's controls start at them)."""
        if self.page is not None:
            return self.click(seed)
        options = self.options
        server0, client0, t0 = cpu_seconds(self.proc.pid), time.process_time(), time.perf_counter()
        out = self.client.predict(PROMPT, "", seed, False, 4, options.sampler, options.num_inference_steps,
                                  options.guidance_scale, False, api_name="/generate")
        row = {"request": time.perf_counter() - t0}
        summary = out[4]
        if self.breakdown:
            files = [self.url + "gradio_api/file=" + e["path"] for e in file_entries(out)]
            t1 = time.perf_counter()
            for url in files:  # as gradio_client 2.x downloads: httpx.stream, so a fresh client per file
                with httpx.stream("GET", url, verify=self.ssl_verify) as response:
                    response.read()
            row["downloads"] = time.perf_counter() - t1
            row["request"] += row["downloads"]
            row["server CPU"] = cpu_seconds(self.proc.pid) - server0
            row["client CPU"] = time.process_time() - client0
            t2 = time.perf_counter()
            for url in files:  # one kept-alive connection, as a browser fetches them (not in the request's time)
                self.http.get(url).read()
            row["same downloads, one connection"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            for url in files:  # fresh clients again, without building a verifying TLS context for plain http
                with httpx.stream("GET", url, verify=False) as response:
                    response.read()
            row["same downloads, fresh clients, ssl_verify off"] = time.perf_counter() - t3
            row["files"] = len(files)
            with urllib.request.urlopen(self.url + "gradio_api/profiling/traces?last_n=1") as response:
                trace = json.loads(response.read())[-1]
            for phase in ("queue_wait", "preprocess", "fn_call", "postprocess", "total"):
                row[f"server {phase}"] = trace[f"{phase}_ms"] / 1000
            row["models"] = model_seconds(summary)
            row["handler beyond the models"] = row["server fn_call"] - row["models"]
            row["event stream and client"] = row["request"] - row["downloads"] - row["server total"]
        self.rows.append(row)
        return summary

    def trivial(self) -> float:
        """Round trip of a request that does almost nothing (the leaderboard of an empty arena)."""
        t0 = time.perf_counter()
        self.client.predict("all", api_name="/arena_leaderboard")
        return time.perf_counter() - t0

    def close(self) -> None:
        if getattr(self, "page", None) is not None:
            self.page.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


BREAKDOWN = ["request", "server queue_wait", "server preprocess", "server fn_call", "models", "handler beyond the models",
             "server postprocess", "server total", "event stream and client", "downloads",
             "same downloads, one connection", "same downloads, fresh clients, ssl_verify off", "server CPU",
             "client CPU"]


def app_specs(here: Path, diffusion: str, against: str = "", against_diffusion: str = "", app_options: str = "",
              against_app_options: str = "") -> list[tuple[str, Path, str, list[str]]]:
    """(label, checkout, diffusion model, more `t2i app` options) of each app to start: this checkout's, then
    ``--against``'s, whose diffusion model is ``--against-diffusion`` (default: the same as this one's)."""
    label = "this checkout" + (f" ({app_options})" if app_options else "")
    specs = [(label, here, diffusion, shlex.split(app_options))]
    if against:
        other = against_diffusion or diffusion
        label = (f"--against {against}" + (f" ({other})" if other != diffusion else "")
                 + (f" ({against_app_options})" if against_app_options else ""))
        specs.append((label, Path(against).resolve(), other, shlex.split(against_app_options)))
    return specs


def main(argv: list[str] | None = None) -> None:
    from apps.app import AppConfig

    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--diffusion", default=AppConfig.diffusion, help="the app's diffusion model (default: the app's)")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests (seeds 0, 1, ...)")
    parser.add_argument("--breakdown", action="store_true", help="say where each request's time goes (see above)")
    parser.add_argument("--against", default="", help="another checkout whose app is timed in alternation with this one")
    parser.add_argument("--against-diffusion", default="",
                        help="the diffusion model of the --against app (default: --diffusion); with --against . two "
                             "models of this checkout are compared in one run")
    parser.add_argument("--app-options", default="", help="more `t2i app` options for this checkout's app, e.g. "
                                                          "--app-options=--compile")
    parser.add_argument("--against-app-options", default="", help="more `t2i app` options for the --against app")
    parser.add_argument("--no-ssl-verify", action="store_true",
                        help="gradio_client with ssl_verify=False: no TLS on this plain-http URL either way, but with it "
                             "on, httpx loads the CA bundle for each of the client's HTTP requests (one per file)")
    parser.add_argument("--browser", nargs="?", const="chromium", default="",
                        help="time click to images shown in headless Chromium (this executable; default: chromium)")
    args = parser.parse_args(argv)
    if args.browser:
        import shutil

        if args.breakdown:
            raise SystemExit("--browser times what a person sees; --breakdown times gradio_client's parts: give one")
        found = shutil.which(args.browser)
        if not found:
            raise SystemExit(f"--browser {args.browser}: no such executable (apt-get install chromium, or give its path)")
        args.browser = found
    if args.against and not (Path(args.against) / "apps" / "app.py").is_file():
        raise SystemExit(f"--against must be a checkout of this project (with apps/app.py), got {args.against!r}")
    if args.against_diffusion and not args.against:
        raise SystemExit("--against-diffusion is the model of the --against app: give --against too (--against . for "
                         "this checkout)")
    if args.against_app_options and not args.against:
        raise SystemExit("--against-app-options are the --against app's: give --against too (--against . for this "
                         "checkout)")
    specs = app_specs(Path(__file__).resolve().parents[1], args.diffusion, args.against, args.against_diffusion,
                      args.app_options, args.against_app_options)
    apps: list[App] = []
    playwright = browser = None
    try:
        if args.browser:  # one headless Chromium, each app a tab of it (playwright's sync API starts once per thread)
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
            browser = playwright.chromium.launch(executable_path=args.browser, headless=True)
        for label, checkout, diffusion, options in specs:  # one after the other: loading models is what ``ready`` times
            apps.append(App(label, checkout, diffusion, args.breakdown, ssl_verify=not args.no_ssl_verify,
                            browser=browser, options=options))
        trivial = {app.label: [] for app in apps}
        for seed in range(args.repeats):
            for app in apps if seed % 2 == 0 else apps[::-1]:  # alternate which goes first
                summary = app.request(seed)
                if args.breakdown:
                    trivial[app.label].append(app.trivial())
    finally:
        for app in apps:
            app.close()
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()
    client = (f"Chromium {args.browser}: click until the 8 new images are shown" if args.browser else
              f"gradio_client (ssl_verify {'off' if args.no_ssl_verify else 'on, its default'}), files downloaded")
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs; client: {client}")
    print(f"| app | diffusion model (its sampler, steps, guidance) | ready (`t2i app` launched until the page answers) | "
          f"4-image request for both models (median of {args.repeats}) | slowest of {args.repeats} |")
    print("| --- | --- | --- | --- | --- |")
    for app in apps:
        times = [row["request"] for row in app.rows]
        o = app.options
        print(f"| {app.label} | `{app.diffusion}` ({o.sampler}, {o.num_inference_steps}, {o.guidance_scale:g}) | "
              f"{app.ready:.1f} s | {statistics.median(times):.2f} s | {max(times):.2f} s |")
    if args.browser:
        print("\nPer request (medians, seconds): the models inside it (the app's summary), and the CPU seconds the "
              "app's process and the browser (Chromium and playwright's driver) spent on it:\n")
        print("| app | request | models | app CPU | browser CPU |")
        print("| --- | --- | --- | --- | --- |")
        for app in apps:
            print(f"| {app.label} | " + " | ".join(f"{statistics.median(row[part] for row in app.rows):.3f}"
                                                  for part in ("request", "models", "server CPU", "browser CPU")) + " |")
    if len(apps) == 2:
        ratio = statistics.median(row["request"] for row in apps[1].rows) / statistics.median(
            row["request"] for row in apps[0].rows)
        print(f"\n{apps[1].label} / this checkout, median request: {ratio:.2f}x")
    if args.breakdown:
        print(f"\nWhere a request's time goes (medians, seconds; {apps[0].rows[0]['files']:.0f} files per answer):\n")
        print("| part | " + " | ".join(app.label for app in apps) + " |")
        print("| --- |" + " --- |" * len(apps))
        for part in BREAKDOWN:
            print(f"| {part} | " + " | ".join(f"{statistics.median(row[part] for row in app.rows):.3f}" for app in apps)
                  + " |")
        print("| trivial request (`/arena_leaderboard`) round trip | "
              + " | ".join(f"{statistics.median(trivial[app.label]):.3f}" for app in apps) + " |")
    print("last summary:\n" + str(summary))


if __name__ == "__main__":
    main()
