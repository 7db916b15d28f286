"""Evaluators trained by the project (weights shipped under ``t2i/builtin/``, made by ``t2i train evaluators``).

- ``ShapesEvaluator`` (``shapes-evaluator``): objects, attributes and relations of shapes
  images; ``prompt_accuracy`` (GenEval-style, exact); features for domain FID.
- ``DigitsClassifier`` (``digits-classifier``): class probabilities of 32 px digits;
  ``score_samples`` (accuracy vs requested digit, coverage, entropy); features for domain FID.
- ``pooled.PooledFeatureNet``: the feature head both networks share (pooled conv + hidden, standardised).

    python -c "from t2i.evaluators import ShapesEvaluator; print(ShapesEvaluator.from_pretrained().config)"
"""

from t2i.evaluators.digits import DigitsClassifier, score_samples
from t2i.evaluators.shapes import ShapesEvaluator, prompt_accuracy

__all__ = ["ShapesEvaluator", "DigitsClassifier", "prompt_accuracy", "score_samples"]
