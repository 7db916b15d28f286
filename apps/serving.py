"""What the app's server may write, keep and serve: its own outputs folder, and nothing uploaded.

- ``OutputsFolder``: every image an answer points to is written here under a unique name,
  atomically (a temp file renamed into place), so concurrent answers never share, rewrite or
  half-write a file (gradio's own PIL cache names files by content and rewrites them in place).
  The folder is also gradio's cache (``GRADIO_TEMP_DIR``), so it is the only folder served,
  and it is kept under a size cap: the oldest files go first, never ones younger than
  ``min_age_s`` (an answer's files must outlive its download). The folder is walked (every file
  stat'ed) only when the bytes written since the last walk may have crossed the cap, or ``rescan_s``
  after it (to count files gradio wrote): a walk per answer grew with the folder, about 10 ms of CPU
  per answer at 500 files and linear in the file count up to the cap. The arena's vote database
  (``arena.sqlite`` and SQLite's ``-wal`` / ``-shm`` files beside it) lives here too and is never
  pruned or counted: ``keep`` names it.
- ``ModelThreads``: every model call runs on one of ``concurrency`` long-lived threads with a fixed
  number of torch threads. torch's CPU thread pool belongs to the thread that calls it; gradio calls
  handlers from changing worker threads, and a fresh pool per request doubled the time of 4 images
  (8 DDIM steps, in an ad-hoc in-process check, not a repo benchmark: 0.39 -> 0.73 s on 2 cores; one
  torch thread: 0.31 s. One thread's lead is measured by ``benchmarks/fast_sampling.py --threads 1``).
- ``RefuseUploads``: an ASGI middleware that refuses every upload (unless the translation tab takes
  images: ``allow_uploads``, size-capped by gradio's ``max_file_size``) and answers an unknown API
  name with 404 and the list of names instead of a server error.

    python -c "from apps.serving import demo; demo()"
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import math
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image


class OutputsFolder:
    """Unique, atomically written images under ``root/images``; the whole folder kept under ``max_bytes``."""

    KEEP = ("arena.sqlite", "arena.sqlite-wal", "arena.sqlite-shm")  # files of the root never pruned

    def __init__(self, root: str | Path, max_bytes: int, min_age_s: float = 120.0, rescan_s: float = 10.0):
        self.root = Path(root).resolve()
        self.images = self.root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.min_age_s, self.rescan_s = int(max_bytes), float(min_age_s), float(rescan_s)
        self._lock = threading.Lock()
        self._bytes: int | None = None  # bytes found by the last walk plus those saved since (None: never walked)
        self._walked_at = -math.inf  # time.monotonic() of the last walk

    def save(self, images: Iterable[Image.Image]) -> list[str]:
        """Write each image as ``images/<uuid>.png`` (temp file + rename); return the paths.

        Give all images of one answer in one call: the folder is checked against its cap once per call."""
        paths, written = [], 0
        for image in images:
            final = self.images / f"{uuid.uuid4().hex}.png"
            fd, tmp = tempfile.mkstemp(dir=self.images, prefix=".", suffix=".png.tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    image.save(fh, format="PNG")
                    written += fh.tell()
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            paths.append(str(final))
        with self._lock:
            if self._bytes is not None:
                self._bytes += written
            walk = (self._bytes is None or self._bytes > self.max_bytes
                    or time.monotonic() - self._walked_at >= self.rescan_s)
        if walk:
            self.prune()
        return paths

    def _kept(self, path: Path) -> bool:
        return path.parent == self.root and path.name in self.KEEP

    def size(self) -> int:
        """Bytes of the prunable files (the kept database files left out)."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file() and not self._kept(p))

    def prune(self) -> int:
        """Delete the oldest files (older than ``min_age_s``) until the folder fits ``max_bytes``; bytes freed."""
        with self._lock:
            files = []
            for p in self.root.rglob("*"):
                try:
                    if p.is_file() and not self._kept(p):
                        st = p.stat()
                        files.append((st.st_mtime, st.st_size, p))
                except OSError:  # deleted meanwhile
                    continue
            total = sum(size for _, size, _ in files)
            self._bytes, self._walked_at = total, time.monotonic()
            if total <= self.max_bytes:
                return 0
            freed, now = 0, time.time()
            for mtime, size, path in sorted(files):
                if total - freed <= self.max_bytes or now - mtime < self.min_age_s:
                    break
                path.unlink(missing_ok=True)
                freed += size
            self._bytes = total - freed
            for folder in sorted((p for p in self.root.rglob("*") if p.is_dir() and p != self.images), reverse=True):
                try:
                    folder.rmdir()  # gradio's per-file cache folders, once empty
                except OSError:
                    pass
            return freed


class ModelThreads:
    """Run model calls on ``workers`` long-lived threads, each with ``torch_threads`` torch threads (0 = torch's default).

    ``threads(fn, *args)`` returns ``fn(*args)`` (or raises its error); the caller's context
    variables travel along, so gradio's progress bars still find their request.
    """

    def __init__(self, workers: int = 1, torch_threads: int = 1):
        self.torch_threads = torch_threads
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="model",
                                                          initializer=self._init_thread)

    def _init_thread(self) -> None:
        if self.torch_threads > 0:
            import torch

            torch.set_num_threads(self.torch_threads)

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        context = contextvars.copy_context()
        return self.pool.submit(context.run, fn, *args, **kwargs).result()


class RefuseUploads:
    """ASGI middleware: 403 for uploads (unless ``allow_uploads``), 404 (with the valid names) for unknown API names."""

    def __init__(self, app: Any, api_names: Iterable[str] = (), allow_uploads: bool = False):
        self.app = app
        self.api_names = sorted(api_names)
        self.allow_uploads = allow_uploads

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            path = scope.get("path", "")
            if not self.allow_uploads and scope.get("method") == "POST" and path.rstrip("/").endswith("/upload"):
                return await _reply(send, 403, "This app takes no file uploads.")
            name = _called_api_name(path)
            if name is not None and self.api_names and name not in self.api_names:
                return await _reply(send, 404, f"Unknown API name {'/' + name!r}; this app has "
                                               f"{['/' + n for n in self.api_names]}.")
        await self.app(scope, receive, send)


def _called_api_name(path: str) -> str | None:
    """``/gradio_api/call/NAME[/EVENT]`` and ``/gradio_api/run/NAME`` -> NAME (None for other paths)."""
    parts = [p for p in path.split("/") if p]
    for verb in ("call", "run"):
        if verb in parts[:-1] and parts.index(verb) >= 1 and parts[parts.index(verb) - 1] == "gradio_api":
            return parts[parts.index(verb) + 1]
    return None


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def demo() -> None:
    with tempfile.TemporaryDirectory() as d:
        out = OutputsFolder(d, max_bytes=2_000, min_age_s=0)
        paths = out.save([Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(6)])
        print(len(paths), "written;", sum(Path(p).exists() for p in paths), "kept under", out.max_bytes, "bytes:",
              out.size())
