"""Headless Chromium (Debian's) loads the app: Generate fills both galleries; in the arena, a vote
reveals the names and the leaderboard updates."""

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
            page.goto(f"http://127.0.0.1:{cfg.port}/", wait_until="load")  # not networkidle: the
            page.locator("#prompt textarea").wait_for(timeout=30_000)  # arena's gr.State keeps a heartbeat open
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


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_arena_vote_reveals_names_and_updates_the_leaderboard(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    from apps.app import build_app
    from t2i.arena import VoteStore

    cfg = build_tiny_models(tmp_path / "models")
    demo = build_app(cfg)
    demo.launch(server_name="127.0.0.1", server_port=cfg.port, prevent_thread_lock=True, quiet=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(f"http://127.0.0.1:{cfg.port}/", wait_until="load")  # not networkidle: the
            page.locator("#prompt textarea").wait_for(timeout=30_000)  # arena's gr.State keeps a heartbeat open
            page.get_by_role("tab", name="Arena").click()
            board = page.locator("#leaderboard")
            assert "shapes-cvae" not in board.inner_text()  # no votes yet
            for round_ in range(2):
                page.locator("#arena-prompt textarea").fill("a large blue square in the top left")
                page.locator("#battle").click()
                for side in ("#arena-a", "#arena-b"):
                    page.locator(f"{side} img").first.wait_for(state="visible", timeout=60_000)
                page.wait_for_function("!document.querySelector('#vote-a').disabled", timeout=30_000)
                assert " was " not in page.locator("#reveal").inner_text()  # names hidden before the vote
                page.locator("#vote-a").click()
                page.wait_for_function("document.querySelector('#reveal').innerText.includes(' was ')",
                                       timeout=30_000)
                assert page.locator("#vote-a").is_disabled()  # one vote per battle
            reveal = page.locator("#reveal").inner_text()
            votes = VoteStore(Path(cfg.outputs) / "arena.sqlite").votes()
            assert len(votes) == 2 and votes[-1].model_a in reveal and votes[-1].model_b in reveal
            page.wait_for_function(
                f"document.querySelector('#leaderboard').innerText.includes({votes[-1].model_a!r})", timeout=30_000)
            text = board.inner_text()
            shot = Path(cfg.outputs) / "arena.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        assert all(v.model_a in text and v.model_b in text for v in votes)
    finally:
        demo.close()
