"""benchmarks.fast_sampling keeps each study's figures apart (--name): a new study once overwrote the
json and the sample grid that the README's table was published from."""

import json

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
