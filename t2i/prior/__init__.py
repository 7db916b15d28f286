"""The diffusion prior of unCLIP: a ``PriorTransformer`` that maps CLIP text conditions to a CLIP image
embedding (model, loss, sampler, embedding cache), its evaluation, and its folder (diffusers' layout).

    HF_HUB_OFFLINE=1 python -c "from t2i.prior.model import demo; demo()"
"""

from t2i.prior.evaluate import compare, per_pair, table
from t2i.prior.model import (SAMPLERS, EmbeddingCache, TextConditions, build_cache, build_prior, drop_conditions,
                             encode_captions, encode_images, predict_x0, prior_loss, sample_prior, set_clip_stats,
                             to_prior_space, training_scheduler)
from t2i.prior.io import PriorBundle, load_prior, save_prior

__all__ = ["SAMPLERS", "EmbeddingCache", "PriorBundle", "TextConditions", "build_cache", "build_prior", "compare",
           "drop_conditions", "encode_captions", "encode_images", "load_prior", "per_pair", "predict_x0",
           "prior_loss", "sample_prior", "save_prior", "set_clip_stats", "table", "to_prior_space",
           "training_scheduler"]
