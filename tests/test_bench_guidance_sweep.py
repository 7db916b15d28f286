"""The bench's guidance sweep times every scale warm (a model's first call is not charged to the first scale)."""

import time

from PIL import Image

from t2i.bench.evaluate import guidance_sweep
from t2i.bench.scoring import EvalSet


class SlowFirstCall:
    """A denoising generator whose first call costs 0.4 s more than the others (as a model's lazy start-up does)."""

    family, conditioning = "fake", "text"

    def __init__(self):
        self.calls = []

    def decode_latents(self, latents):
        return latents

    def generate(self, prompts=None, labels=None, seed=0, num_images_per_prompt=1, callback=None, **options):
        if not self.calls:
            time.sleep(0.4)
        self.calls.append(options["guidance_scale"])
        return [Image.new("RGB", (8, 8)) for _ in range(len(prompts) * num_images_per_prompt)]


class Constant:
    def score(self, images, eval_set, distribution=True):
        return {"acc_all": 0.5}


def test_the_first_guidance_scale_is_timed_after_a_warm_up_call():
    """Regression: the quick bench on a captioned folder reported 887 ms/image at guidance 1 and 277 at 3, the first
    scale carrying the model's first call."""
    generator = SlowFirstCall()
    eval_set = EvalSet(name="validation", prompts=["a red circle", "a blue square"], images_per_prompt=2)
    points, best = guidance_sweep(generator, eval_set, Constant(), [1.0, 3.0], "ddim", 2, "acc_all")
    assert generator.calls[0] == 1.0 and len(generator.calls) >= 3  # the warm-up, then each scale
    assert [p["guidance"] for p in points] == [1.0, 3.0] and best == 1.0
    assert points[0]["ms_per_image"] < 50  # 4 images: the 0.4 s first call would add 100 ms per image
