"""Model registry. Entries register themselves when their module is imported below."""

from seven_bench.models.base import ModelBundle, ModelEntry
from seven_bench.registry import Registry

MODELS: Registry[ModelEntry] = Registry("model")

from seven_bench.models import text  # noqa: E402,F401  (registers bert, minilm, tiny_bert)
from seven_bench.models import clip  # noqa: E402,F401  (registers clip, tiny_clip)

__all__ = ["MODELS", "ModelBundle", "ModelEntry"]
