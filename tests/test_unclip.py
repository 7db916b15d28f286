"""unCLIP (issue 17): the decoder's parts, the saved layout in stock diffusers, variations/edits, the trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline
from PIL import Image

from gan_baselines.registry import load_generator
from t2i.diffusion.first_stage import build_vae
from t2i.diffusion.pipeline import training_scheduler
from t2i.diffusion.training import diffusion_loss
from t2i.generator import GenerationError
from t2i.unclip.decoder import build_decoder_unet, decoder_kwargs, drop_embeddings, movq_from_vae
from t2i.unclip.testing import make_tiny_unclip


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


@pytest.fixture(scope="module")
def unclip(tmp_path_factory):
    return make_tiny_unclip(tmp_path_factory.mktemp("unclip") / "model")


def test_movq_decodes_scaled_latents_as_the_vae_decodes_latents():
    torch.manual_seed(0)
    vae = build_vae("f4-test", sample_size=16)
    vae.register_to_config(scaling_factor=0.37)
    movq = movq_from_vae(vae)
    z, x = torch.randn(2, 4, 4, 4), torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(movq.decode(z * 0.37, force_not_quantize=True).sample, vae.decode(z).sample,
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(movq.encode(x).latents, 0.37 * vae.encode(x).latent_dist.mean, atol=1e-5, rtol=0)


def test_variance_half_stays_zero_and_never_enters_the_loss():
    torch.manual_seed(0)
    unet = build_decoder_unet("test", 4, 4, embed_dim=8, cross_attention_dim=16)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-2, weight_decay=0.1)
    z0, e = torch.randn(3, 4, 4, 4), torch.randn(3, 8)
    loss = diffusion_loss(unet, training_scheduler(), z0, decoder_kwargs(e), torch.Generator().manual_seed(0)).mean()
    loss.backward()
    assert unet.conv_out.weight.grad[4:].abs().max() == 0 and unet.conv_out.weight.grad[:4].abs().max() > 0
    opt.step()
    out = unet(z0, 10, **decoder_kwargs(e)).sample
    assert out.shape == (3, 8, 4, 4) and out[:, 4:].abs().max() == 0
    # the loss is the epsilon MSE of the first C channels, computed here by hand from the same draws
    g = torch.Generator().manual_seed(1)
    got = diffusion_loss(unet, training_scheduler(), z0, decoder_kwargs(e), g)
    g = torch.Generator().manual_seed(1)
    eps = torch.randn(z0.shape, generator=g)
    t = torch.randint(0, 1000, (3,), generator=g)
    sched = training_scheduler()
    pred = unet(sched.add_noise(z0, eps, t), t, **decoder_kwargs(e)).sample[:, :4]
    torch.testing.assert_close(got, (pred - eps).pow(2).mean(dim=(1, 2, 3)))


def test_drop_embeddings_replaces_rows_by_the_null_embedding():
    e, null = torch.randn(100, 8), torch.full((8,), 7.0)
    assert torch.equal(drop_embeddings(e, null, 0.0, torch.Generator().manual_seed(0)), e)
    assert torch.equal(drop_embeddings(e, null, 1.0 - 1e-9, torch.Generator().manual_seed(0)), null.expand(100, -1))
    half = drop_embeddings(e, null, 0.5, torch.Generator().manual_seed(0))
    dropped = (half == 7.0).all(dim=1).sum().item()
    assert 30 < dropped < 70 and torch.equal(half[(half != 7.0).any(dim=1)], e[(half != 7.0).any(dim=1)])


def test_stock_diffusers_pipelines_give_the_generators_images(unclip):
    """prior/ and decoder/ load separately in stock diffusers (as Kandinsky 2.2's do) and draw the same pixels."""
    gen = load_generator(unclip)
    ours = gen.generate(["a red circle"], seed=3, num_images_per_prompt=2)
    prior = KandinskyV22PriorPipeline.from_pretrained(unclip / "prior")
    decoder = KandinskyV22Pipeline.from_pretrained(unclip / "decoder")
    o = gen.options
    generators = [torch.Generator().manual_seed(3)] * 2
    out = prior(["a red circle"] * 2, num_inference_steps=o.prior_steps, guidance_scale=o.prior_guidance,
                generator=generators)
    stock = decoder(image_embeds=out.image_embeds, negative_image_embeds=out.negative_image_embeds, height=32,
                    width=32, num_inference_steps=o.num_inference_steps, guidance_scale=o.guidance_scale,
                    generator=generators).images
    np.testing.assert_array_equal(pixels(ours), pixels(stock))
    info = json.loads((unclip / "t2i_unclip.json").read_text())
    assert info["family"] == "unclip" and info["options"]["prior_steps"] == 2


def test_variations_and_edits(unclip):
    gen = load_generator(unclip)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    a = gen.variations(image, n=3, seed=1)
    assert len(a) == 3 and a[0].size == (32, 32)
    np.testing.assert_array_equal(pixels(a), pixels(gen.variations(image, n=3, seed=1)))
    assert np.abs(pixels(a[:1]) - pixels(a[1:2])).max() > 0  # new noise per variation
    # re-sampled through the prior first: deterministic in the seed, not the plain variations
    far = gen.variations(image, n=3, seed=1, strength=1.0)
    np.testing.assert_array_equal(pixels(far), pixels(gen.variations(image, n=3, seed=1, strength=1.0)))
    assert np.abs(pixels(far) - pixels(a)).max() > 0
    with pytest.raises(GenerationError, match=r"strength must be in \[0, 1\]"):
        gen.variations(image, strength=-0.1)
    edits = gen.edit(image, "a blue square", weight=0.5, n=2, seed=0)
    assert len(edits) == 2
    np.testing.assert_array_equal(pixels(edits), pixels(gen.edit(image, "a blue square", weight=0.5, n=2, seed=0)))
    with pytest.raises(GenerationError, match=r"weight must be in \[0, 1\]"):
        gen.edit(image, "a blue square", weight=1.5)
    with pytest.raises(GenerationError, match="an image is needed"):
        gen.variations("not an image")


def test_a_folder_without_its_parts_is_a_one_line_error(tmp_path, unclip):
    from t2i.unclip.pipeline import load_generator as load_unclip

    (tmp_path / "t2i_unclip.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="not an unCLIP model .*t2i train unclip --prior"):
        load_unclip(tmp_path)


def test_two_step_training_run_makes_a_text_to_image_model(tmp_path):
    """`t2i train prior` then `t2i train unclip` (2 steps each), resumed with --prior: the output loads and samples."""
    from t2i.clip.testing import make_tiny_clip
    from train import prior as train_prior
    from train import unclip as train_unclip

    clip = make_tiny_clip(tmp_path / "clip")
    vae = build_vae("f4-test", sample_size=32)
    vae.save_pretrained(tmp_path / "vae")
    common = ["--steps", "2", "--batch-size", "8", "--n", "32", "--log-every", "1", "--checkpoint-every", "0"]
    assert train_prior.main(["--clip", str(clip), "--layers", "1", "--heads", "2", "--head-dim", "8",
                             "--eval-splits", "", "--out", str(tmp_path / "prior"), *common]) == 0
    decoder_args = ["--clip", str(clip), "--vae", str(tmp_path / "vae"), "--unet", "test", "--cross-attention-dim", "16",
                    "--sample-steps", "2", "--prior-steps", "2", "--out", str(tmp_path / "unclip"), *common]
    assert train_unclip.main(decoder_args) == 0  # the decoder alone: variations only, not yet a text-to-image model
    with pytest.raises(FileNotFoundError, match="not an unCLIP model"):
        load_generator(tmp_path / "unclip")
    # the finished run resumed with --prior, by the line its model card gives: nothing retrained, the prior
    # assembled beside the decoder
    import re
    import shlex

    from train.cli import main as t2i

    line = re.findall(r"```bash\n(.*?)```", (tmp_path / "unclip" / "README.md").read_text(), flags=re.S)[0]
    line = line.split("#")[0].replace("PRIOR_RUN", shlex.quote(str(tmp_path / "prior")))
    assert line.startswith("t2i train unclip --config") and t2i(shlex.split(line)[1:]) == 0
    out = tmp_path / "unclip"
    assert (out / "decoder" / "model_index.json").is_file() and (out / "prior" / "model_index.json").is_file()
    import json

    assert json.loads((out / "t2i_unclip.json").read_text())["reading"] == {"resize": "center-crop",
                                                                            "background": "black"}  # the run's
    # the prior's training record comes along: the app knows the prompts' vocabulary (regression: "not recorded")
    from t2i.provenance import trained_on

    known = trained_on(out)
    assert known.data == "shapes" and known.clip == str(clip.resolve()) and {"circle", "above"} <= known.words
    assert list((out / "samples").glob("samples_*.png"))
    images = load_generator(out).generate(["a red circle"], seed=0, num_images_per_prompt=1)
    assert images[0].size == (32, 32)
    other = make_tiny_clip(tmp_path / "other-clip", seed=1)
    with pytest.raises(SystemExit, match="trained on the CLIP .* not on --clip"):
        train_unclip.main(["--clip", str(other), "--vae", str(tmp_path / "vae"), "--prior", str(tmp_path / "prior"),
                           "--out", str(tmp_path / "bad"), *common])


def test_sample_command_makes_variations_and_edits_of_an_image(tmp_path, unclip, capsys):
    from train import sample

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "scene.png")
    assert sample.main(["--model", str(unclip), "--image", str(tmp_path / "scene.png"), "--n", "3",
                        "--out", str(tmp_path / "var")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "var" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["text"] == "" and (tmp_path / "var" / "grid.png").is_file()
    assert rows[0]["layout"] == "move" and rows[0]["strength"] == 0.0
    assert sample.main(["--model", str(unclip), "--image", str(tmp_path / "scene.png"), "--n", "3", "--layout", "keep",
                        "--out", str(tmp_path / "kept")]) == 0
    assert json.loads((tmp_path / "kept" / "metadata.jsonl").read_text().splitlines()[0])["layout"] == "keep"
    assert sample.main(["--model", str(unclip), "--image", str(tmp_path / "scene.png"), "--prompt", "a blue square",
                        "--weight", "0.25", "--out", str(tmp_path / "edit")]) == 0
    row = json.loads((tmp_path / "edit" / "metadata.jsonl").read_text())
    assert row["weight"] == 0.25 and row["text"] == "a blue square"
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SystemExit, match="is not a readable image .*give a PNG/JPEG file"):
        sample.main(["--model", str(unclip), "--image", str(tmp_path / "broken.png"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--image needs an unCLIP model"):
        sample.main(["--model", "shapes-ldm", "--image", str(tmp_path / "scene.png"), "--out", str(tmp_path / "y")])


def test_half_copy_is_float16_on_disk_and_float32_in_stock_pipelines(tmp_path, unclip):
    from safetensors import safe_open

    from t2i.unclip.pipeline import save_half

    half = save_half(unclip, tmp_path / "half")
    files = list(half.glob("*/*/*.safetensors"))
    assert len(files) >= 5
    for weights in files:
        with safe_open(str(weights), "pt") as f:
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}, weights
    prior = KandinskyV22PriorPipeline.from_pretrained(half / "prior")  # stock, no dtype argument
    decoder = KandinskyV22Pipeline.from_pretrained(half / "decoder")
    dtypes = {m.dtype for m in (prior.prior, prior.text_encoder, prior.image_encoder, decoder.unet, decoder.movq)}
    assert dtypes == {torch.float32}
    a = load_generator(unclip).generate(["a red circle"], seed=0)
    b = load_generator(half).generate(["a red circle"], seed=0)
    assert np.abs(pixels(a) - pixels(b)).mean() < 8  # float16 rounding of the weights only


def test_input_images_are_read_as_the_decoders_training_images(tmp_path, unclip):
    """Regression: variations and edits fed CLIP `image.convert("RGB")` (transparent pixels as stored, often black)
    centre-cropped by its processor, whatever --resize / --background the decoder was trained with; the model
    now records them in t2i_unclip.json and reads inputs alike."""
    import json
    import shutil

    from PIL import Image

    tall = Image.new("RGBA", (10, 40), (0, 0, 0, 0))
    tall.paste((255, 0, 0, 255), (0, 0, 10, 10))  # red at the top, cut away by a centre crop
    default = load_generator(unclip)
    assert default.reading == ("center-crop", "black") and default.as_read(tall).size == (10, 10)
    assert default.as_read(tall).getpixel((5, 5)) == (0, 0, 0)
    model = tmp_path / "padded"
    shutil.copytree(unclip, model)
    info = json.loads((model / "t2i_unclip.json").read_text())
    (model / "t2i_unclip.json").write_text(json.dumps({**info, "reading": {"resize": "pad", "background": "white"}}))
    padded = load_generator(model)
    square = padded.as_read(tall)
    assert square.size == (40, 40) and square.getpixel((0, 0)) == (255, 255, 255)  # letterboxed on white
    assert square.getpixel((20, 5)) == (255, 0, 0)  # the top kept
    assert not torch.equal(padded.embed_image(tall), default.embed_image(tall))


def test_a_long_prompt_gives_one_warning_of_ours_not_the_priors_log(unclip, capfd):
    """Regression: `t2i eval` of an unCLIP model on long captions printed diffusers' note for every batch, listing
    the padding of the shorter prompts ('<|endoftext|>' ...) as truncated text (its logger writes to stderr)."""
    from t2i.unclip.pipeline import TRUNCATION_NOTE

    gen = load_generator(unclip)
    long = " ".join(["a red circle above a blue square"] * 12)
    capfd.readouterr()
    with pytest.warns(UserWarning, match="1 prompt.*truncated, e.g. 'a red circle"):
        gen.generate(["a red circle", long], seed=0, num_images_per_prompt=1)
    assert TRUNCATION_NOTE not in capfd.readouterr().err
