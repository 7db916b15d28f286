"""benchmarks/app_latency.py reads the models' seconds from the app's summary as either client sees it, and
starts the --against app with its own diffusion model."""

from pathlib import Path

import pytest

from benchmarks.app_latency import app_specs, main, model_seconds

MARKDOWN = """| model | time for 4 image(s) | ms / image | scored by | mean CLIP score | CLIP score per image |
|---|---|---|---|---|---|
| shapes-tgan (`tgan-attn`) | 0.02 s | 5 | `shapes-clip` | 92.4 | 92.1, 93.0, 92.5, 92.1 |
| shapes-ldm-fast (`ldm`; ddim, 8 steps, guidance 5) | 0.34 s | 85 | `shapes-clip` | 91.0 | 91.8, 91.6, 90.7, 89.8 |

CLIP score = 100 x cosine(image, prompt), unclamped: near 0 or below; seed 8."""

# the same table as the browser's innerText gives it: cells separated by tabs, no Markdown
PAGE_TEXT = """model\ttime for 4 image(s)\tms / image\tscored by\tmean CLIP score\tCLIP score per image
shapes-tgan (tgan-attn)\t0.02 s\t5\tshapes-clip\t92.4\t92.1, 93.0, 92.5, 92.1
shapes-ldm-fast (ldm; ddim, 8 steps, guidance 5)\t0.34 s\t85\tshapes-clip\t91.0\t91.8, 91.6, 90.7, 89.8

CLIP score = 100 x cosine(image, prompt), unclamped: near 0 or below; seed 8."""


def test_model_seconds_sums_both_models_from_markdown_and_from_the_page():
    assert abs(model_seconds(MARKDOWN) - 0.36) < 1e-9
    assert abs(model_seconds(PAGE_TEXT) - 0.36) < 1e-9  # read as 0 before the page's tabs were parsed
    assert model_seconds("no table yet") == 0.0


def test_the_against_app_gets_its_own_diffusion_model(tmp_path):
    """Regression: --against passed this app's --diffusion to the other checkout too, so two models could not be
    timed in one run (and a checkout without this one's default built-in exited before it was ready)."""
    here = Path(".")
    assert app_specs(here, "shapes-ldm-6") == [("this checkout", here, "shapes-ldm-6", [])]
    same = app_specs(here, "shapes-ldm-6", str(tmp_path))
    assert [d for _, _, d, _ in same] == ["shapes-ldm-6", "shapes-ldm-6"] and same[1][1] == tmp_path.resolve()
    two = app_specs(here, "shapes-ldm-6", ".", "shapes-ldm-fast")
    assert [d for _, _, d, _ in two] == ["shapes-ldm-6", "shapes-ldm-fast"] and "shapes-ldm-fast" in two[1][0]
    with pytest.raises(SystemExit, match="give --against too"):
        main(["--against-diffusion", "shapes-ldm-fast"])


def test_app_options_go_to_their_app_and_name_it(tmp_path):
    """--app-options / --against-app-options: one checkout's app with and without an option in one run."""
    here = Path(".")
    specs = app_specs(here, "shapes-ldm-6", ".", "", "", "--compile --torch-threads 1")
    assert [o for _, _, _, o in specs] == [[], ["--compile", "--torch-threads", "1"]]
    assert specs[0][0] == "this checkout" and "(--compile --torch-threads 1)" in specs[1][0]
    with pytest.raises(SystemExit, match="give --against too"):
        main(["--against-app-options=--compile"])
