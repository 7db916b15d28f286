"""CLIP on open_clip: presets, create/load/save in open_clip's layout, export, evaluation.

    python -c "from t2i.clip import create_clip; print(type(create_clip('t2i-tiny')).__name__)"
"""

from t2i.clip.evaluate import evaluate, evaluate_splits
from t2i.clip.export import export_image_encoder, export_text_encoder
from t2i.clip.model import (
    CONFIG_NAME, WEIGHTS_NAME, create_clip, get_tokenizer, is_clip_folder, list_architectures, load_clip,
    preprocess_images, register_presets, save_clip, text_states,
)

__all__ = [
    "evaluate", "evaluate_splits", "export_image_encoder", "export_text_encoder", "CONFIG_NAME", "WEIGHTS_NAME", "create_clip", "get_tokenizer", "is_clip_folder", "list_architectures",
    "load_clip", "preprocess_images", "register_presets", "save_clip", "text_states",
]
