"""The training runtime's chores: config checks, gradient accumulation, bf16 on CPU, EMA,
data order and resumable positions, logs, grids and curves. Tiny MLPs on random tensors."""

import json
import math

import pytest
import torch
from PIL import Image

from t2i.config import build_parser, parse_config
from t2i.runtime import EMA, Run, RunConfig
from t2i.runtime.data import RunLoader
from t2i.runtime.demo import DemoConfig, train


def test_run_config_cli_help_and_validation(tmp_path):
    cfg = parse_config(DemoConfig, ["--mixed-precision", "bf16", "--grad-accum=2", "--resume", "latest"])
    assert (cfg.mixed_precision, cfg.grad_accum, cfg.resume) == ("bf16", 2, "latest")
    help_text = " ".join(build_parser(DemoConfig, "demo").format_help().split())
    assert "write a resumable checkpoint every N steps; 0 = only at the end (default: 10)" in help_text
    assert "--mixed-precision V, --mixed_precision V autocast precision" in help_text
    with pytest.raises(ValueError, match=r"mixed_precision must be one of \['no', 'fp16', 'bf16'\], got 'fp8'"):
        Run(RunConfig(out=str(tmp_path), mixed_precision="fp8"), "x")
    with pytest.raises(ValueError, match="ema_decay must be in"):
        Run(RunConfig(out=str(tmp_path), ema_decay=1.5), "x")
    with pytest.raises(ValueError, match=r"batch_size \(10\) must be divisible by num_processes \* grad_accum \(1 \* 4\)"):
        Run(RunConfig(out=str(tmp_path), batch_size=10, grad_accum=4), "x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal of fp16")
def test_fp16_on_cpu_is_refused_with_the_alternatives(tmp_path):
    with pytest.raises(ValueError, match="fp16.*needs a CUDA GPU.*'bf16' or 'no'"):
        Run(RunConfig(out=str(tmp_path), mixed_precision="fp16"), "x")


def test_grad_accumulation_matches_a_bigger_batch(tmp_path):
    common = dict(steps=6, batch_size=16, n=64, dropout=0.0, input_noise=0.0, checkpoint_every=0)
    _, big, _ = train(DemoConfig(out=str(tmp_path / "big"), grad_accum=1, **common))
    _, acc, _ = train(DemoConfig(out=str(tmp_path / "acc"), grad_accum=4, **common))
    _, other, _ = train(DemoConfig(out=str(tmp_path / "other"), grad_accum=1, seed=3, **common))
    for p, q, r in zip(big.parameters(), acc.parameters(), other.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # same samples, summed in another order
        assert not torch.allclose(p, r)  # a different data order gives different weights


def test_bf16_autocast_runs_on_cpu(tmp_path):
    run = Run(DemoConfig(out=str(tmp_path), steps=3, batch_size=8, n=16, mixed_precision="bf16"), "bf16")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net, opt = run.prepare(net, opt)
    seen = []
    run.unwrap(net)[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    losses = []
    for _, (x, y) in run.loop(run.dataloader(data)):
        with run.accumulate(net):
            out = net(x)
            loss = (out - y).pow(2).mean()
            run.backward(loss)
            opt.step(); opt.zero_grad()
        losses.append(loss.detach().item())
    assert seen and all(dt == torch.bfloat16 for dt in seen)  # the layers ran in bf16
    assert out.dtype == torch.float32  # accelerate returns fp32 outputs
    assert run.unwrap(net)[0].weight.dtype == torch.float32  # master weights stay fp32
    assert all(math.isfinite(v) for v in losses)


def test_ema_follows_the_formula():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.99)
    start = ema.model.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    d = min(0.99, 1 / 10)  # warm-up decay at t = 0
    ema.update()
    torch.testing.assert_close(ema.model.weight, d * start + (1 - d) * net.weight)
    assert not ema.model.weight.requires_grad and not ema.model.training
    state = ema.state_dict()
    other = EMA(torch.nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(state)
    assert other.num_updates == 1 and other.decay == 0.99 and torch.equal(other.model.weight, ema.model.weight)


def _loader(dataset, micro, processes, rank, shuffle=True, workers=0):
    return RunLoader(dataset, micro, processes, rank, seed=0, shuffle=shuffle, num_workers=workers,
                     collate_fn=None, pin_memory=False)


def _take(loader, k):
    it = loader.batches()
    return [next(it)[0].tolist() for _ in range(k)]


def test_data_order_does_not_depend_on_process_count():
    data = torch.utils.data.TensorDataset(torch.arange(30))
    one = _take(_loader(data, 4, 1, 0), 9)  # 7 global micro-batches of 4 per epoch
    r0, r1 = _take(_loader(data, 2, 2, 0), 9), _take(_loader(data, 2, 2, 1), 9)
    assert [a + b for a, b in zip(r0, r1)] == one
    assert sorted(sum(one[:7], [])) == sorted(set(sum(one[:7], [])))  # no repeats within an epoch
    assert one[7] != one[0]  # epoch 2 is shuffled differently


def test_loader_resumes_at_its_position():
    data = torch.utils.data.TensorDataset(torch.arange(30))
    loader = _loader(data, 4, 1, 0)
    straight = _take(loader, 12)
    resumed = _loader(data, 4, 1, 0)
    resumed.load_state_dict({"epoch": 1, "batch": 2})  # 7 + 2 batches done
    assert _take(resumed, 3) == straight[9:12]


class Stream(torch.utils.data.IterableDataset):
    """A WebDataset-like stream of 23 samples; the order moves with set_epoch."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        return iter((x,) for x in torch.arange(23).roll(self.epoch).tolist())


def test_iterable_dataset_is_dealt_out_and_resumes():
    one = _take(_loader(Stream(), 4, 1, 0), 7)  # 5 complete batches per epoch (tail of 3 dropped)
    assert one[:5] == [list(range(i, i + 4)) for i in range(0, 20, 4)]
    assert one[5] == [22, 0, 1, 2]  # epoch 1: set_epoch rolled the stream
    r0, r1 = _take(_loader(Stream(), 2, 2, 0), 7), _take(_loader(Stream(), 2, 2, 1), 7)
    assert [a + b for a, b in zip(r0, r1)] == one
    resumed = _loader(Stream(), 4, 1, 0)
    resumed.load_state_dict({"epoch": 0, "batch": 3})
    assert _take(resumed, 3) == one[3:6]


@pytest.mark.slow
def test_iterable_dataset_with_workers_keeps_the_order():
    assert _take(_loader(Stream(), 4, 1, 0, workers=2), 7) == _take(_loader(Stream(), 4, 1, 0), 7)


def test_logs_samples_curves_and_final_model(tmp_path):
    cfg = DemoConfig(out=str(tmp_path), steps=6, batch_size=8, n=32, log_every=2, sample_every=3, ema_decay=0.9,
                     tensorboard=True)
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(math.isfinite(r["loss"]) and r["images_per_s"] > 0 and "grad_norm" in r for r in rows)
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["weights_000003.png", "weights_000006.png"]
    assert Image.open(tmp_path / "samples" / grids[0]).size == (6 * 6 + 2, 6 * 6 + 2)  # 32 tiles of 4x4, 6 per row
    assert Image.open(tmp_path / "curves.png").size[0] > 100
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 6
    assert json.loads((tmp_path / "model" / "config.json").read_text())["family"] == "runtime-demo"
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    cost = json.loads((tmp_path / "run_cost.json").read_text())  # time and memory per step (issue 16)
    assert cost["steps"] == 6 and cost["wall_s"] > 0 and cost["s_per_step"] == pytest.approx(cost["wall_s"] / 6, rel=0.05, abs=1e-3)
    assert cost["peak_rss_mb"] > 50 and cost["batch_size"] == 8 and cost["device"] == "cpu"


def test_should_sample_schedule_and_prepare_errors(tmp_path):
    run = Run(RunConfig(out=str(tmp_path), steps=5, batch_size=2, grad_accum=2, sample_every=2, checkpoint_every=0),
              "sched")
    net = run.prepare(torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match="run.dataloader"):
        run.prepare(torch.utils.data.DataLoader(list(range(4))))
    with pytest.raises(TypeError, match="run.dataloader"):
        next(run.loop([1, 2, 3]))
    with pytest.raises(ValueError, match="taken"):
        run.register("model_0", torch.nn.Linear(1, 1))
    sampled = []
    for step, _ in run.loop(run.dataloader(torch.utils.data.TensorDataset(torch.randn(6, 1)))):
        if run.should_sample():
            sampled.append(step + 1)  # steps finished once this one is
    assert sampled == [2, 4, 5]
    assert run.gather(torch.ones(2)).shape == (2,) and run.num_processes == 1 and run.is_main
    assert net is not None


def test_captions_under_grids_show_the_spaces_between_words():
    """Regression: the captioned grids (t2i eval on one's own data, the bench) drew captions in Pillow's default
    font at its default size, whose spaces were no wider than the gaps between letters ("Adragonfly")."""
    from PIL import ImageDraw, ImageFont

    from t2i.runtime.grids import CAPTION_FONT_PX

    image = Image.new("L", (120, 20), 255)
    ImageDraw.Draw(image).text((2, 2), "A dragonfly", fill=0, font=ImageFont.load_default(size=CAPTION_FONT_PX))
    inked = [x for x in range(image.width) if min(image.crop((x, 0, x + 1, image.height)).getdata()) < 128]
    gaps = [b - a - 1 for a, b in zip(inked, inked[1:])]
    word_gap = next(g for g in gaps if g > 0)  # after the "A"
    assert word_gap > max(gaps[gaps.index(word_gap) + 1:])  # wider than any gap between the letters of "dragonfly"


def test_a_trainer_that_reads_user_data_otherwise_than_the_run_asks_is_refused():
    """Regression guard: `t2i train ae` and `vae` loaded user folders without training_options(cfg), so --resize /
    --background / --random-flip were accepted and ignored; Run.dataloader now compares the data's reading with
    the run's and names the fix."""
    from types import SimpleNamespace

    from t2i.data.transforms import Augment
    from t2i.runtime.run import check_reading

    cfg = SimpleNamespace(resize="pad", background="white", random_flip=0.0)
    check_reading(SimpleNamespace(augment=Augment(resize="pad", background="white")), cfg, "ae")
    check_reading(object(), cfg, "ae")  # built-in data (no augment): nothing to compare
    with pytest.raises(RuntimeError, match="ae: the training data was read with --resize center-crop --background "
                                           "black.*training_options"):
        check_reading(SimpleNamespace(augment=Augment()), cfg, "ae")
    cached = SimpleNamespace(resize="random-crop", background="black", random_flip=0.0)  # read once: its centre
    check_reading(SimpleNamespace(augment=Augment(resize="center-crop")), cached, "prior")
