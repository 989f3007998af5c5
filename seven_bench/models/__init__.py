"""Model registry. Entries register themselves when their module is imported below."""

from seven_bench.models import clip, text  # noqa: F401  (register clip, tiny_clip; bert, minilm, tiny_bert)
from seven_bench.models.base import MODELS, ModelBundle, ModelEntry

__all__ = ["MODELS", "ModelBundle", "ModelEntry"]
