"""Metrics against references: closed forms, brute-force loops and torchmetrics."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from t2i.metrics import (
    METRICS,
    FeatureExtractor,
    InceptionUnavailable,
    compute,
    density_coverage,
    diversity,
    domain_fid,
    frechet_distance,
    frechet_from_features,
    inception_score_from_logits,
    kid_from_features,
    knn_radii,
    mmd2_unbiased,
    precision_recall,
)
from t2i.metrics.clip_score import clip_score
from t2i.metrics.features import INCEPTION_ENV, check_inception_weights


def features_with_stats(mu: torch.Tensor, sigma: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n points whose sample mean is exactly mu and unbiased sample covariance exactly sigma."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    cov = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(cov)).T  # whitened: sample cov = I
    return z @ torch.linalg.cholesky(sigma).T + mu


# --- Frechet distance -------------------------------------------------------------------
@pytest.mark.parametrize("n,d", [(300, 16), (40, 64)])  # also fewer samples than dimensions
def test_fid_of_a_set_with_itself_is_zero(n, d):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(1)) * 3 + 1
    assert abs(frechet_from_features(x, x)) < 1e-6


def test_fid_matches_closed_form_for_commuting_covariances():
    g = torch.Generator().manual_seed(0)
    d = 6
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))  # shared eigenbasis
    a = torch.rand(d, generator=g, dtype=torch.float64) * 2 + 0.1
    b = torch.rand(d, generator=g, dtype=torch.float64) * 2 + 0.1
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    # commuting covariances: Tr(S1 + S2 - 2 (S1 S2)^(1/2)) = sum (sqrt(a) - sqrt(b))^2
    expected = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # the same through feature sets built to have exactly these statistics
    x1, x2 = features_with_stats(mu1, s1, 500, seed=1), features_with_stats(mu2, s2, 700, seed=2)
    assert frechet_from_features(x1, x2) == pytest.approx(expected, rel=1e-8)


def test_fid_matches_scipy_sqrtm_for_general_covariances():
    rng = np.random.default_rng(0)
    d = 8
    a1, a2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a1 @ a1.T + 0.1 * np.eye(d), a2 @ a2.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real  # the pytorch-fid / TTUR reference computation
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    got = frechet_distance(*(torch.from_numpy(t) for t in (mu1, s1, mu2, s2)))
    assert got == pytest.approx(expected, rel=1e-8)


# --- KID --------------------------------------------------------------------------------
def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_unbiased_estimator_matches_a_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.5  # unequal sizes
    expected = brute_force_mmd2(x, y)
    assert mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(expected, rel=1e-10)
    mean, std = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subset_size=100)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0


def test_kid_subsets_are_seeded_and_near_zero_for_the_same_distribution():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    a = kid_from_features(x, y, subset_size=100, subsets=20, seed=3)
    assert a == kid_from_features(x, y, subset_size=100, subsets=20, seed=3)
    assert abs(a[0]) < 3 * a[1] + 1e-3  # unbiased: centred on 0
    assert kid_from_features(x, y + 1, subset_size=100, subsets=20)[0] > 10 * abs(a[0])


# --- precision / recall / density / coverage ----------------------------------------------
def brute_force_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict:
    dist = lambda a, b: float(np.sqrt(((a - b) ** 2).sum()))  # noqa: E731

    def radius(points, i, k):
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r_real = [radius(real, i, k_pr) for i in range(len(real))]
    r_fake = [radius(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(f, real[i]) <= r_real[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= r_fake[j] for j in range(len(fake))) for r in real])
    r_dc = [radius(real, i, k_dc) for i in range(len(real))]
    density = sum(dist(f, real[i]) <= r_dc[i] for f in fake for i in range(len(real))) / (k_dc * len(fake))
    coverage = np.mean([any(dist(real[i], f) <= r_dc[i] for f in fake) for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_match_brute_force_on_random_points():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) * 0.7 + 0.6
    expected = brute_force_prdc(real, fake, k_pr=3, k_dc=5)
    pr = precision_recall(torch.from_numpy(real), torch.from_numpy(fake))  # k = 3 default
    dc = density_coverage(torch.from_numpy(real), torch.from_numpy(fake))  # k = 5 default
    for key in ("precision", "recall"):
        assert pr[key] == pytest.approx(expected[key], abs=1e-12)
    for key in ("density", "coverage"):
        assert dc[key] == pytest.approx(expected[key], abs=1e-12)
    assert 0 < pr["precision"] < 1 and 0 < pr["recall"] < 1  # a non-trivial case


def test_prdc_extremes_and_knn_radius():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x)["precision"] == 1.0 and density_coverage(x, x)["coverage"] == 1.0
    far = precision_recall(x, x + 100)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    line = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(line, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="k must be in"):
        knn_radii(line, 4)


# --- Inception Score ---------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::UserWarning")  # torchmetrics: feature buffer, std of one split
def test_inception_score_matches_formula_and_torchmetrics():
    from torchmetrics.image.inception import InceptionScore

    logits = torch.randn(60, 10, generator=torch.Generator().manual_seed(0)) * 3
    p = logits.double().softmax(1).numpy()
    marginal = p.mean(0)
    expected = math.exp(np.mean([(pi * (np.log(pi) - np.log(marginal))).sum() for pi in p]))
    assert inception_score_from_logits(logits, splits=1)[0] == pytest.approx(expected, rel=1e-10)

    class Logits(torch.nn.Module):  # torchmetrics' feature hook: images are our logits
        def forward(self, x):
            return x

    metric = InceptionScore(feature=Logits(), splits=1)
    metric.update(logits)
    assert float(metric.compute()[0]) == pytest.approx(expected, rel=1e-5)
    assert inception_score_from_logits(torch.zeros(10, 5), splits=2) == (1.0, 0.0)  # uniform -> 1


# --- Inception availability is checked, never downloaded --------------------------------------
def test_inception_needs_a_local_file_with_the_right_hash(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    with pytest.raises(InceptionUnavailable, match="domain-fid"):
        check_inception_weights()
    fake = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    fake.write_bytes(b"not the weights")
    monkeypatch.setenv(INCEPTION_ENV, str(fake))
    with pytest.raises(InceptionUnavailable, match="not the FID Inception weights"):
        check_inception_weights()
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(InceptionUnavailable):
        compute("fid", real=x, fake=x)
    with pytest.raises(ValueError, match="domain-fid"):
        compute("fid", real=torch.randn(4, 2), fake=torch.randn(4, 2))


# --- diversity, registry, images through an extractor --------------------------------------
def test_diversity_detects_collapse():
    g = torch.Generator().manual_seed(0)
    varied = torch.randn(12, 4, generator=g)
    collapsed = torch.randn(3, 4, generator=g).repeat_interleave(4, dim=0)  # 4 identical per prompt
    assert diversity(collapsed, num_images_per_prompt=4)["diversity"] == 0.0
    out = diversity(varied, groups=["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    assert out["groups"] == 3 and 0.5 < out["diversity_ratio"] < 1.5
    with pytest.raises(ValueError, match="exactly one"):
        diversity(varied)


def test_registry_and_image_inputs():
    assert {"fid", "kid", "domain-fid", "domain-kid", "precision-recall", "density-coverage", "clip-score",
            "inception-score", "diversity", "prompt-accuracy", "digits-score"} <= set(METRICS)
    with pytest.raises(ValueError, match="unknown metric"):
        compute("fidd")
    images = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mean_colour = FeatureExtractor(name="mean-colour", fn=lambda x: x.mean((2, 3)))
    out = domain_fid(images, images * 0.5, extractor=mean_colour)
    assert out["features"] == "mean-colour" and "fid" not in out and out["domain_fid"] > 0
    expected = frechet_from_features(images.mean((2, 3)).double(), (images * 0.5).mean((2, 3)).double())
    assert out["domain_fid"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="no feature extractor"):
        domain_fid(images, images)


# --- CLIP score ------------------------------------------------------------------------------
class ToyClip(torch.nn.Module):
    """encode_image: mean RGB; encode_text: a fixed vector per token id -- a known geometry."""

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(3, 3)
        self.table.weight.data = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [-1.0, -1.0, -1.0]])

    def encode_image(self, x):
        return x.mean((2, 3))  # (B, 3)

    def encode_text(self, ids):
        return self.table(ids[:, 0])  # (B, 3)


def test_clip_score_is_100_times_clipped_cosine():
    model = ToyClip()
    words = {"red": 0, "blue": 1, "dark": 2}
    tokenizer = lambda texts: torch.tensor([[words[t]] for t in texts])  # noqa: E731
    images = torch.zeros(3, 3, 4, 4)
    images[0, 0] = 1.0  # pure red
    images[1, 0], images[1, 2] = 1.0, 1.0  # magenta: cos 1/sqrt(2) with "blue"
    images[2, 1] = 1.0  # green vs "dark" (-1, -1, -1): negative cosine -> 0
    out = clip_score(images, ["red", "blue", "dark"], model, tokenizer, preprocess=lambda x: x)
    assert out["clip_score"] == pytest.approx((100 + 100 / math.sqrt(2) + 0) / 3, rel=1e-6)


def test_clip_score_with_a_tiny_open_clip_model():
    import open_clip

    from t2i.clip.testing import tiny_clip

    model = tiny_clip(seed=0)
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=16)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prompts = ["a red circle", "a blue square"]
    out = clip_score(images, prompts, model, tokenizer)
    from t2i.clip import preprocess_images

    with torch.no_grad():
        img = model.encode_image(preprocess_images(model, images))
        txt = model.encode_text(tokenizer(prompts))
    expected = (100 * torch.nn.functional.cosine_similarity(img, txt).clamp_min(0)).mean()
    assert out["clip_score"] == pytest.approx(float(expected), abs=1e-4)
    with pytest.raises(ValueError, match="one prompt per image"):
        clip_score(images, prompts[:1], model, tokenizer)
