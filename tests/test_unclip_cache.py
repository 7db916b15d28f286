"""The unCLIP decoder's cache on disk (``t2i train unclip --cache-dir DIR``): its posterior moments and CLIP image
embeddings memory-mapped in DIR, resumed after an interruption, reused by a later run that trains the same
decoder as the cache in memory, and refused when DIR was made from other data or another CLIP.
Tiny open_clip, test-size first stage and decoder, 32 px shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

from t2i.clip.testing import make_tiny_clip, tiny_clip
from t2i.data import load_dataset
from t2i.diffusion.disk_cache import cache_fingerprint, open_cache_dir
from t2i.diffusion.first_stage import build_vae
from t2i.diffusion.training import build_latent_cache
from t2i.prior.model import embed_images, encode_images

CPU = torch.device("cpu")
OPTIONS = {"split": "train", "size": 32, "n": 20, "seed": 0}  # 20 items: chunks of 8, 8 and 4


class Interrupted(Exception):
    """Stands for Ctrl-C or a kill in the middle of a build."""


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A saved tiny CLIP, another one (other weights), and a saved test-size first stage."""
    folder = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    build_vae("f4-test", sample_size=32).save_pretrained(folder / "vae")
    return make_tiny_clip(folder / "clip"), make_tiny_clip(folder / "other-clip", seed=1), folder / "vae"


def test_interrupted_embeddings_resume_with_their_moments_and_equal_the_in_memory_ones(tmp_path):
    """The CLIP image embeddings share the moments' chunks and progress: a build killed in its third chunk
    resumes there (the finished chunks' images are not embedded again) and ends with what memory holds, which
    is what ``encode_images`` gave the trainer before the cache could live on disk."""
    clip, data = tiny_clip(), load_dataset("shapes", **OPTIONS)
    torch.manual_seed(0)
    vae = build_vae("f4-test", sample_size=32)
    calls = []

    def embed(images, fail_at=None):  # embed_images, counted, raising Interrupted on call fail_at
        calls.append(len(images))
        if len(calls) == fail_at:
            raise Interrupted
        return embed_images(clip, images, CPU)

    memory = build_latent_cache(data, vae, CPU, batch_size=8, extras={"image_embeds": embed})
    expected, _ = encode_images(clip, data, CPU, batch_size=8, progress=False)
    assert torch.equal(memory.extras["image_embeds"], expected)
    folder = open_cache_dir(tmp_path / "cache", cache_fingerprint(data, "shapes", OPTIONS, vae,
                                                                 image_encoder=clip.visual))
    calls.clear()
    with pytest.raises(Interrupted):
        build_latent_cache(data, vae, CPU, batch_size=8, folder=folder,
                           extras={"image_embeds": lambda x: embed(x, fail_at=3)})
    assert json.loads((folder / "latents.json").read_text())["items"] == 16
    calls.clear()
    lines = []
    disk = build_latent_cache(data, vae, CPU, batch_size=8, folder=folder, log=lines.append,
                              extras={"image_embeds": embed})
    assert calls == [4] and lines[0].startswith(f"latent cache: resuming in {folder} at item 16 of 20")
    on_disk = np.load(folder / "image_embeds.npy", mmap_mode="r")
    assert on_disk.shape == (20, 16) and on_disk.dtype == np.float32
    assert torch.equal(disk.extras["image_embeds"], expected) and torch.equal(disk.moments, memory.moments)
    with pytest.raises(ValueError, match=r"\(it differs in image_encoder.weights\)"):
        open_cache_dir(folder, cache_fingerprint(data, "shapes", OPTIONS, vae, image_encoder=tiny_clip(1).visual))
    with pytest.raises(ValueError, match="'moments' is the VAE posterior's array"):
        build_latent_cache(data, vae, CPU, extras={"moments": embed})


def test_unclip_cache_dir_runs_learn_what_the_memory_cache_learns_and_reuse_the_folder(parts, tmp_path, capsys):
    """--cache-dir: the first run writes the moments and embeddings, the next one reuses them without encoding
    anything (the files untouched), both train the decoder the in-memory cache trains, bit for bit; a run on
    other data, or with another CLIP, is refused in one line that names the fix."""
    from train import unclip as train_unclip
    from train.cli import main as cli

    clip, other_clip, vae = parts
    common = ["--clip", str(clip), "--vae", str(vae), "--unet", "test", "--cross-attention-dim", "16",
              "--sample-steps", "2", "--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1",
              "--checkpoint-every", "0"]
    cache = tmp_path / "cache"
    assert train_unclip.main([*common, "--out", str(tmp_path / "memory")]) == 0
    assert train_unclip.main([*common, "--cache-dir", str(cache), "--out", str(tmp_path / "first")]) == 0
    assert "reusing" not in capsys.readouterr().out
    written = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {"fingerprint.json", "latents.json", "moments.npy", "image_embeds.npy"} <= set(written)
    assert np.load(cache / "image_embeds.npy", mmap_mode="r").shape == (32, 16)
    assert train_unclip.main([*common, "--cache-dir", str(cache), "--out", str(tmp_path / "second")]) == 0
    assert f"latent cache: reusing {cache} (32 items" in capsys.readouterr().out  # "..., nothing encoded"
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == written  # read, never rewritten
    memory = UNet2DConditionModel.from_pretrained(tmp_path / "memory" / "decoder" / "unet").state_dict()
    for run in ("first", "second"):
        trained = UNet2DConditionModel.from_pretrained(tmp_path / run / "decoder" / "unet").state_dict()
        assert all(torch.equal(trained[k], memory[k]) for k in memory), run

    for changed, differs in ((["--seed", "1"], "data.seed"), (["--clip", str(other_clip)], "image_encoder.weights")):
        assert cli(["train", "unclip", *common, *changed, "--cache-dir", str(cache),
                    "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"(it differs in {differs}): give another --cache-dir or delete" in err
