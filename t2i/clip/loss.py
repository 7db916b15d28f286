"""NegCLIP: the CLIP contrastive loss with hard-negative captions (Yuksekgonul et al., ICLR 2023, Sec. 5).

open_clip's ``ClipLoss`` is the symmetric InfoNCE of Radford et al. (2021): with ``s`` the
learned logit scale and normalised features, image i scores every caption j by
``s * <I_i, T_j>`` and the right caption is the diagonal, in both directions. NegCLIP adds,
for each image-caption pair, ``K`` perturbed captions (``t2i.clip.negatives``) as extra
*columns* of the image->text logits only: each image must prefer its own caption over every
caption of the batch *and* over every negative of the batch,

    L_i2t = CE([s I T^T | s I N^T], diag)        L_t2i = CE(s T I^T, diag)
    L = (L_i2t + L_t2i) / 2

with ``N`` the ``B * K`` negative features. A negative slot a caption has none for (a rule
that does not apply) is masked out with ``-inf``. Under several processes the negatives are
gathered with their gradients like the captions (open_clip's ``gather_with_grad``) and the
loss is local: each process scores its own images against the global captions and negatives.

    python -c "from t2i.clip.loss import demo; demo()"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss


def gather_with_grad(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping the gradient path to each one."""
    if world_size == 1:
        return x
    import torch.distributed.nn

    return torch.cat(torch.distributed.nn.all_gather(x), dim=0)


class NegClipLoss(ClipLoss):
    """``ClipLoss`` (local loss, gathered with gradients) plus hard-negative caption columns."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__(local_loss=True, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world_size)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                negative_features: torch.Tensor, negative_valid: torch.Tensor) -> torch.Tensor:
        """image/text ``(b, P)`` normalised, negatives ``(b * K, P)`` normalised, valid ``(b * K,)`` bool."""
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)  # (b, B) each
        negatives = gather_with_grad(negative_features, self.world_size)  # (B * K, P)
        valid = gather_with_grad(negative_valid.float(), self.world_size) > 0  # (B * K,)
        negative_logits = (logit_scale * image_features @ negatives.T).masked_fill(~valid[None, :], float("-inf"))
        labels = self.get_ground_truth(image_features.device, logits_per_image.shape[0])  # (b,) global column ids
        image_to_text = F.cross_entropy(torch.cat([logits_per_image, negative_logits], dim=1), labels)
        text_to_image = F.cross_entropy(logits_per_text, labels)
        return (image_to_text + text_to_image) / 2


@torch.no_grad()
def order_accuracy(image_features: torch.Tensor, text_features: torch.Tensor, negative_features: torch.Tensor,
                   negative_valid: torch.Tensor) -> torch.Tensor:
    """Share of (image, own negative) pairs where the image scores its caption higher: a training gauge.

    Negatives are caption-major: rows ``i * K ... i * K + K - 1`` of ``negative_features`` belong to image i.
    """
    b = image_features.shape[0]
    true = (image_features * text_features).sum(-1)  # (b,)
    own = torch.einsum("bp,bkp->bk", image_features, negative_features.view(b, -1, negative_features.shape[-1]))
    valid = negative_valid.view(b, -1)
    return ((true[:, None] > own) & valid).sum() / valid.sum().clamp(min=1)


def demo() -> None:
    torch.manual_seed(0)
    image, text, neg = (F.normalize(torch.randn(n, 8), dim=-1) for n in (4, 4, 8))
    valid = torch.tensor([True, True, True, False, True, True, True, True])
    loss = NegClipLoss()(image, text, torch.tensor(10.0), neg, valid)
    print(f"NegCLIP loss {loss:.4f} vs CLIP loss {ClipLoss()(image, text, torch.tensor(10.0)):.4f}")
