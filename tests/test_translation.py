"""Image-to-image GANs (issue 18): U-Net / PatchGAN contracts, pix2pix and CycleGAN losses against hand-computed
values, the history buffer, both data layouts (and bad input), PSNR/SSIM, two-step runs and exact resume."""

import json
import math

import pytest
import torch
from PIL import Image

from gan_baselines.translation import (CycleGANLoss, ImagePool, PatchGAN, Pix2PixLoss, UNet, build_pix2pix,
                                       receptive_field)
from t2i.data.translation import TASKS, load_translation, render_pair, task_scenes, write_translation
from t2i.io import load_weights
from t2i.metrics.pixels import psnr, ssim


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("size", [32, 64])
def test_unet_keeps_the_image_shape(size):
    torch.manual_seed(0)
    G = UNet(size, 3, 3, base=4)
    y = G(torch.randn(2, 3, size, size))
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1  # tanh output
    assert len(G.down) == int(math.log2(size))  # down to 1 x 1


def test_unet_refuses_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power of two"):
        UNet(48)


def test_unet_skip_connections_carry_the_input():
    """With the innermost path cut, the output still depends on the input through the skips."""
    torch.manual_seed(0)
    G = UNet(32, 3, 3, base=4, dropout=0.0).eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    G(x)[0, 0, 5, 5].backward()
    assert x.grad[0, :, 3:8, 3:8].abs().sum() > 0


def test_patchgan_receptive_field_is_the_documented_one():
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]  # n_layers=3 is the paper's 70 x 70
    torch.manual_seed(0)
    D = PatchGAN(3, base=4, n_layers=1).eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 14, 14)
    out[0, 0, 7, 7].backward()  # an interior patch: the gradient's support is the receptive field
    cols = x.grad.abs().sum((0, 1, 2)).nonzero().flatten()
    assert int(cols.max() - cols.min()) + 1 == receptive_field(1)


def test_pix2pix_discriminator_sees_input_and_output():
    G, D = build_pix2pix({"size": 32, "channels": 3, "g_base": 4, "d_base": 4})
    assert D.net[0].in_channels == 6 and D.n_layers == 1


# ----------------------------------------------------------------------------- losses
def test_pix2pix_losses_match_hand_computed_values():
    loss = Pix2PixLoss()
    log3 = math.log(3)
    real, fake = torch.full((1, 1, 2, 2), log3), torch.full((1, 1, 2, 2), log3)
    # D: 0.5 [softplus(-log 3) + softplus(log 3)] = 0.5 [log(4/3) + log 4]
    assert loss.d(real, fake).item() == pytest.approx(0.5 * (math.log(4 / 3) + math.log(4)), rel=1e-6)
    out, target = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    # G: softplus(-0) + 100 * |0.5 - 0| = log 2 + 50
    assert loss.g(torch.zeros(1, 1, 2, 2), out, target).item() == pytest.approx(math.log(2) + 50, rel=1e-6)
    l1_only = Pix2PixLoss(adv_weight=0.0)
    assert l1_only.g(torch.zeros(1, 1, 2, 2), out, target).item() == pytest.approx(50.0)
    assert loss.d(real.expand(3, -1, -1, -1), fake.expand(3, -1, -1, -1)).shape == (3,)  # per sample


def test_cyclegan_losses_match_hand_computed_values():
    loss = CycleGANLoss()
    half = torch.full((2, 1, 3, 3), 0.5)
    assert torch.allclose(loss.d(half, half), torch.tensor([0.25, 0.25]))  # 0.5 [(0.5 - 1)^2 + 0.5^2]
    assert torch.allclose(loss.g_adv(half), torch.tensor([0.25, 0.25]))  # (0.5 - 1)^2
    x = torch.zeros(2, 3, 4, 4)
    assert torch.allclose(loss.cycle(x + 0.1, x), torch.tensor([1.0, 1.0]))  # lambda 10 * 0.1
    assert torch.allclose(loss.identity_loss(x + 0.2, x), torch.tensor([1.0, 1.0]))  # 0.5 * 10 * 0.2


# ----------------------------------------------------------------------------- history buffer
def test_image_pool_fills_then_swaps_half_on_average():
    pool = ImagePool(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 4  # filling: returned as they are
    swapped = 0
    for step in range(50):
        new = (1000.0 * (step + 1) + torch.arange(4.0)).view(4, 1, 1, 1)  # unique values
        out = pool.query(new)
        assert len(pool.images) == 4
        for mine, value in zip(new.flatten().tolist(), out.flatten().tolist()):
            if value != mine:  # an older image came back (from the pool; the new one took its place)
                swapped += 1
                assert value < mine
    assert 0.35 < swapped / 200 < 0.65  # each image swapped with probability 1/2
    assert torch.equal(ImagePool(size=0).query(first), first)  # size 0: no history


def test_image_pool_state_round_trip_replays_the_same_choices():
    a = ImagePool(size=3, seed=1)
    a.query(torch.randn(5, 1, 2, 2))
    b = ImagePool(size=3, seed=99)
    b.load_state_dict(a.state_dict())
    new = torch.randn(4, 1, 2, 2)
    assert torch.equal(a.query(new), b.query(new))


# ----------------------------------------------------------------------------- data
def test_tasks_render_pairs_of_the_same_scene():
    rec = task_scenes("greyscale", 1, seed=3)[0]
    a, b = render_pair(rec, "greyscale")
    assert a.size == b.size == (32, 32)
    ra = a.getpixel((16, 16))
    assert ra[0] == ra[1] == ra[2]  # greyscale
    a, b = render_pair(rec, "outline")
    assert torch.tensor(list(a.tobytes())).sum() < torch.tensor(list(b.tobytes())).sum()  # an outline is less than the fill
    assert all(o["colour"] != "white" for r in task_scenes("background", 40) for o in r["objects"])
    a, b = render_pair(task_scenes("background", 1)[0], "background")
    assert a.getpixel((0, 0)) == (0, 0, 0) and b.getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match="task must be one of"):
        render_pair(rec, "sepia")


def test_written_layouts_are_deterministic_and_agree(tmp_path):
    one, two = write_translation(tmp_path / "one", "outline", 6, seed=2), write_translation(tmp_path / "two", "outline", 6, seed=2)
    assert (one / "AB" / "00003.png").read_bytes() == (two / "AB" / "00003.png").read_bytes()
    assert Image.open(one / "AB" / "00000.png").size == (64, 32)
    rows = [json.loads(line) for line in (one / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["task"] == "outline" and rows[0]["objects"]
    side, folders = load_translation(one / "AB"), load_translation(one)  # A|B files vs A/ + B/
    memory = load_translation("outline", n=6, seed=2)
    for d in (side, folders):
        assert torch.equal(d.A, memory.A) and torch.equal(d.B, memory.B)
    assert folders.records[2]["caption"] == memory.records[2]["caption"]
    item = folders[0]
    assert item["A"].shape == (3, 32, 32) and 0 <= float(item["A"].min()) and float(item["B"].max()) <= 1


def test_unpaired_data_takes_disjoint_halves():
    paired, unpaired = load_translation("greyscale", n=10), load_translation("greyscale", n=10, unpaired=True)
    assert len(unpaired) == 5
    assert torch.equal(unpaired.A, paired.A[:5]) and torch.equal(unpaired.B, paired.B[5:])


def test_bad_translation_folders_are_one_line_errors(tmp_path):
    root = write_translation(tmp_path / "d", "greyscale", 4)
    (root / "B" / "00001.png").rename(root / "B" / "extra.png")
    with pytest.raises(ValueError, match="same file names"):
        load_translation(root)
    domains = load_translation(root, unpaired=True)  # unpaired data does not need matching names
    assert (len(domains.A), len(domains.B), domains.paired) == (4, 4, False)  # two domains, read whole
    (tmp_path / "half" / "A").mkdir(parents=True)
    with pytest.raises(ValueError, match="no B/"):
        load_translation(tmp_path / "half")
    with pytest.raises(ValueError, match="not an A|B pair side by side.*A/ and B/"):
        load_translation(root / "A", size=32)  # 32 x 32 files read as side-by-side A|B
    with pytest.raises(ValueError, match="random-crop would crop every pair the same way"):
        load_translation(root, resize="random-crop", unpaired=True)
    with pytest.raises(ValueError, match="for folders of your images"):
        load_translation("greyscale", random_flip=0.5)  # the scenes name left and right
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither A/ and B/"):
        load_translation(tmp_path / "empty")
    with pytest.raises(ValueError, match="one of the tasks"):
        load_translation(tmp_path / "missing")


def test_data_translation_command_writes_both_layouts(tmp_path, capsys):
    from train import data

    assert data.main(["translation", "--task", "background", "--out", str(tmp_path), "--n", "3"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"AB", "A", "B", "metadata.jsonl"}
    assert len(list((tmp_path / "A").glob("*.png"))) == 3 and "3 background pairs" in capsys.readouterr().out


# ----------------------------------------------------------------------------- metrics
def test_psnr_and_ssim():
    x = torch.rand(2, 3, 16, 16)
    y = (x + 0.1).clamp(0, 1)
    mse = (x - y).pow(2).flatten(1).mean(1)
    assert torch.allclose(psnr(x, y), 10 * torch.log10(1 / mse))
    assert torch.allclose(ssim(x, x), torch.ones(2)) and (ssim(x, y) < 1).all()
    assert torch.allclose(psnr(x, x), torch.full((2,), 100.0))  # capped, never inf
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, y[:1])


# ----------------------------------------------------------------------------- trainers
TINY = ["--n", "16", "--batch-size", "4", "--g-base", "4", "--d-base", "4", "--eval-n", "4", "--log-every", "1",
        "--checkpoint-every", "0"]


def test_pix2pix_two_steps_and_l1_only(tmp_path):
    from train import pix2pix

    assert pix2pix.main(TINY + ["--data", "outline", "--steps", "2", "--out", str(tmp_path / "gan")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and {"loss_d", "loss_g", "l1", "g_adv"} <= set(rows[-1])
    assert list((tmp_path / "gan" / "samples").glob("translate_*.png"))
    report = json.loads((tmp_path / "gan" / "eval.json").read_text())
    assert report["n"] == 4 and "psnr" in report and "ssim" in report and "colour" in report["evaluator"]
    assert json.loads((tmp_path / "gan" / "model" / "config.json").read_text())["family"] == "pix2pix"
    card = (tmp_path / "gan" / "README.md").read_text()  # the model card: recipe, cost, every figure
    assert f"--config {tmp_path / 'gan' / 'config.json'}" in card and "| time | 2 steps in " in card
    assert f"| psnr | {report['psnr']:.4g} |" in card and "| evaluator.colour |" in card
    assert pix2pix.main(TINY + ["--data", "outline", "--steps", "1", "--l1-only", "--out", str(tmp_path / "l1")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "l1" / "metrics.jsonl").read_text().splitlines()]
    assert "loss_d" not in rows[-1] and rows[-1]["g_adv"] == 0  # D is not trained


def test_pix2pix_reads_a_written_folder(tmp_path):
    from train import pix2pix

    write_translation(tmp_path / "data", "greyscale", 8)
    assert pix2pix.main(TINY + ["--data", str(tmp_path / "data" / "AB"), "--steps", "1", "--n", "0",
                                "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["split"] == "train"


def _resume_matches(module, extra, tmp_path):
    common = TINY + extra + ["--checkpoint-every", "2"]
    module.main(common + ["--steps", "4", "--out", str(tmp_path / "straight")])
    module.main(common + ["--steps", "2", "--out", str(tmp_path / "split")])
    module.main(common + ["--steps", "4", "--resume", "latest", "--out", str(tmp_path / "split")])
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    a, b = load_weights(tmp_path / "straight" / "model"), load_weights(tmp_path / "split" / "model")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_pix2pix_resume_is_exact(tmp_path):
    from train import pix2pix

    _resume_matches(pix2pix, ["--data", "greyscale"], tmp_path)


def test_cyclegan_two_steps_and_exact_resume(tmp_path):
    """The history buffers are checkpointed: 2 + 2 resumed steps == 4 straight (pool of 3 fills in step 1)."""
    from train import cyclegan

    _resume_matches(cyclegan, ["--data", "outline", "--pool-size", "3"], tmp_path)
    report = json.loads((tmp_path / "straight" / "eval.json").read_text())
    assert {"cycle_l1", "domain_fid", "evaluator", "psnr"} <= set(report["A->B"])  # filled scenes on black: judged
    assert (tmp_path / "straight" / "model_ba" / "config.json").is_file()
    assert f"| A->B.cycle_l1 | {report['A->B']['cycle_l1']:.4g} |" in (tmp_path / "straight" / "README.md").read_text()
    assert list((tmp_path / "straight" / "samples").glob("cycle_*.png"))


def test_tasks_are_listed_once():
    assert set(TASKS) == {"outline", "greyscale", "background"}


def test_translate_command_matches_the_trainers_outputs(tmp_path, capsys):
    from gan_baselines.translation import load_translator
    from gan_baselines.translation_eval import translate
    from train import pix2pix
    from train import translate as translate_cmd

    assert pix2pix.main(TINY + ["--data", "greyscale", "--steps", "1", "--out", str(tmp_path / "run")]) == 0
    data = write_translation(tmp_path / "data", "greyscale", 3, split="test")
    assert translate_cmd.main(["--model", str(tmp_path / "run"), "--input", str(data / "AB"),
                               "--out", str(tmp_path / "out")]) == 0
    G, config = load_translator(tmp_path / "run")
    expected = translate(G, load_translation(data).A.float() / 255)
    got = torch.tensor(list(Image.open(tmp_path / "out" / "00001.png").tobytes()), dtype=torch.uint8).view(32, 32, 3)
    got = got.permute(2, 0, 1)
    assert torch.equal(got, (expected[1] * 255).round().to(torch.uint8))
    with pytest.raises(ValueError, match="no B -> A generator"):
        load_translator(tmp_path / "run", "ba")
    capsys.readouterr()
    assert translate_cmd.main(["--model", str(tmp_path / "run"), "--input", str(tmp_path / "run" / "curves.png"),
                               "--out", str(tmp_path / "any")]) == 0  # a picture of another size and mode
    assert Image.open(tmp_path / "any" / "curves.png").size == (32, 32)
    assert "resized from" in capsys.readouterr().out
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png.*give PNG or JPEG"):
        translate_cmd.main(["--model", str(tmp_path / "run"), "--input", str(tmp_path / "broken.png"),
                            "--out", str(tmp_path / "bad")])
