"""benchmarks.fast_sampling keeps each study's figures apart (--name): a new study once overwrote the
json and the sample grid that the README's table was published from."""

import json

import pytest
import torch

from benchmarks import fast_sampling
from t2i.diffusion.testing import make_tiny_pipeline


def test_name_chooses_the_files_and_the_default_stays(tmp_path, monkeypatch):
    model = tmp_path / "tiny"
    make_tiny_pipeline().save_pretrained(str(model))
    out = tmp_path / "results"
    sections = []
    monkeypatch.setattr(fast_sampling, "OUT", out)
    monkeypatch.setattr(fast_sampling, "append_section", lambda title, command, lines: sections.append(lines))

    args = ["--configs", f"{model}@ddim:2", "--no-accuracy", "--repeats", "1"]
    assert fast_sampling.main(args + ["--name", "my_study"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["my_study_latency.json"]
    row = json.loads((out / "my_study_latency.json").read_text())["configs"][f"{model}@ddim:2"]
    assert row["unet_calls"] == 2  # 2 steps, one call each (guidance doubles the batch, not the calls)
    assert "`results/my_study.png`" in sections[0][0]
    assert "torch threads" not in sections[0][0]  # the machine line is append_section's; it once came twice

    assert fast_sampling.main(args) == 0  # without --name: the files it always wrote
    assert sorted(p.name for p in out.iterdir()) == ["fast_sampling_latency.json", "my_study_latency.json"]


def test_a_configuration_given_twice_keeps_both_rows(tmp_path, monkeypatch):
    """Regression: rows were keyed by the configuration, so an A, B, A run (the A/B/A order that shows drift)
    silently replaced the first A by the second."""
    model = tmp_path / "tiny"
    make_tiny_pipeline().save_pretrained(str(model))
    sections = []
    monkeypatch.setattr(fast_sampling, "OUT", tmp_path / "results")
    monkeypatch.setattr(fast_sampling, "append_section", lambda title, command, lines: sections.append(lines))
    a, b = f"{model}@ddim:2", f"{model}@ddim:3"
    assert fast_sampling.main(["--configs", a, b, a, "--no-accuracy", "--repeats", "1"]) == 0
    rows = json.loads((tmp_path / "results" / "fast_sampling_latency.json").read_text())["configs"]
    assert list(rows) == [a, b, f"{a} (run 3)"]
    assert [r["unet_calls"] for r in rows.values()] == [2, 3, 2]
    assert sum(line.startswith("| `") for line in sections[0]) == 3


def test_bf16_config_runs_the_pipeline_in_bfloat16_and_unknown_suffixes_are_refused(tmp_path, monkeypatch):
    """``+bf16``: the whole pipeline in bfloat16 (the GPU study's row); a misspelt suffix is a one-line error,
    not a silently float32 row."""
    model = tmp_path / "tiny"
    make_tiny_pipeline().save_pretrained(str(model))
    monkeypatch.setattr(fast_sampling, "OUT", tmp_path / "results")
    monkeypatch.setattr(fast_sampling, "append_section", lambda title, command, lines: None)
    seen, real = [], fast_sampling.latency
    monkeypatch.setattr(fast_sampling, "latency", lambda gen, *a, **k: seen.append(gen.pipe.unet.dtype) or real(
        gen, *a, **k))
    spec = f"{model}@ddim:2+bf16"
    assert fast_sampling.main(["--configs", spec, "--no-accuracy", "--repeats", "1"]) == 0
    assert seen == [torch.bfloat16]
    rows = json.loads((tmp_path / "results" / "fast_sampling_latency.json").read_text())["configs"]
    assert rows[spec]["unet_calls"] == 2
    with pytest.raises(SystemExit):
        fast_sampling.main(["--configs", f"{model}@ddim:2+bf61", "--no-accuracy"])


@pytest.mark.compile
def test_compile_config_times_the_compiled_unet_and_reports_its_first_call(tmp_path, monkeypatch):
    """``MODEL@SAMPLER:STEPS+compile``: the UNet's forward runs under torch.compile, its hooks still count each
    call, and the compilation (first call) is reported apart from the timed requests."""
    model = tmp_path / "tiny"
    make_tiny_pipeline().save_pretrained(str(model))
    sections = []
    monkeypatch.setattr(fast_sampling, "OUT", tmp_path / "results")
    monkeypatch.setattr(fast_sampling, "append_section", lambda title, command, lines: sections.append(lines))
    specs = [f"{model}@ddim:2", f"{model}@ddim:2+compile"]
    assert fast_sampling.main(["--configs", *specs, "--no-accuracy", "--repeats", "2"]) == 0
    rows = json.loads((tmp_path / "results" / "fast_sampling_latency.json").read_text())["configs"]
    eager, compiled = rows[specs[0]], rows[specs[1]]
    assert (eager["compiled"], compiled["compiled"]) == (False, True)
    assert compiled["unet_calls"] == 2 and compiled["unet"] > 0
    assert compiled["first_call_s"] > compiled["seconds_4_images"]  # the compilation is in the first call only
    assert "in the graph" in "\n".join(sections[0]) and compiled["unet_attention"] == 0.0
    assert compiled["max_pixel_diff_vs_eager"] <= 1  # the same images, to rounding
