"""Headless Chromium (Debian's) loads the app, types a prompt, clicks Generate, finds both galleries filled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .app_fixtures import build_tiny_models

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_generates_into_both_galleries(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    from apps.app import build_app

    cfg = build_tiny_models(tmp_path / "models")
    demo = build_app(cfg)
    demo.launch(server_name="127.0.0.1", server_port=cfg.port, prevent_thread_lock=True, quiet=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"http://127.0.0.1:{cfg.port}/", wait_until="networkidle")
            box = page.locator("#prompt textarea")
            box.fill("a large blue square in the top left")
            page.locator("#generate").click()
            for gallery in ("#gan-gallery", "#diffusion-gallery"):
                page.locator(f"{gallery} img").first.wait_for(state="visible", timeout=60_000)
            page.locator("#summary table").wait_for(timeout=30_000)
            counts = {g: page.locator(f"{g} img").count() for g in ("#gan-gallery", "#diffusion-gallery")}
            shot = Path(cfg.outputs) / "browser.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert all(c >= 4 for c in counts.values()), counts  # default: 4 images per model
        assert shot.stat().st_size > 10_000
    finally:
        demo.close()
