"""CLIP models: the zero-shot head (construction and argmax), the ViT-B/32 prunable set, tiny_clip
forward/backward, and the offline availability check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from seven_bench.errors import UserError
from seven_bench.models import MODELS
from seven_bench.models import clip as clip_mod
from seven_bench.models.clip import ZeroShotClassifier, build_text_head
from seven_bench.tasks import TASKS
from seven_bench.tasks.base import TaskInfo

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
CPU = torch.device("cpu")


def _info(names: tuple[str, ...], task: str = "cifar10") -> TaskInfo:
    return TaskInfo(name=task, modality="image", num_labels=len(names), reported_metric="top1", class_names=names)


def test_entries_registered() -> None:
    for name in ("clip", "tiny_clip"):
        entry = MODELS.get(name)
        assert entry.name == name and entry.modality == "image"


def test_text_head_averages_normalized_prompts() -> None:
    # a controlled "text tower": the class word picks a basis vector, the template adds a fixed offset
    basis = {
        "cat": torch.tensor([1.0, 0, 0, 0]),
        "dog": torch.tensor([0, 1.0, 0, 0]),
        "car": torch.tensor([0, 0, 1.0, 0]),
    }
    offsets = {"photo": torch.tensor([0, 0, 0, 3.0]), "drawing": torch.tensor([0, 0, 0, -3.0])}

    def encode(texts: list[str]) -> torch.Tensor:
        out = []
        for t in texts:
            cls = next(k for k in basis if k in t)
            off = next(k for k in offsets if k in t)
            out.append(7.0 * (basis[cls] + offsets[off]))  # unnormalized on purpose
        return torch.stack(out)

    head = build_text_head(
        encode, ("cat", "dog", "car"), ("a photo of a {}.", lambda c: f"a drawing of a {c}."), batch_size=2
    )
    assert head.shape == (3, 4)
    # the +3/-3 offsets cancel after per-prompt normalization, so each class is its basis vector
    torch.testing.assert_close(head, torch.eye(4)[:3])
    assert torch.allclose(head.norm(dim=-1), torch.ones(3))


def test_zero_shot_classifier_argmax_and_loss() -> None:
    class Fixed(nn.Module):  # "visual tower" returning the input features scaled, plus one parameter
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * x

    head = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
    model = ZeroShotClassifier(Fixed(), head, logit_scale=math.log(100.0), class_names=("a", "b", "c", "ab"))
    feats = torch.tensor([[0.1, 5.0, 0.2], [0.0, 0.1, 3.0], [4.0, 0.2, 0.1], [1.0, 1.0, 0.0]])
    labels = torch.tensor([1, 2, 0, 3])
    out = model(pixel_values=feats, labels=labels)
    assert out.logits.shape == (4, 4)
    assert out.logits.argmax(-1).tolist() == [1, 2, 0, 3]
    expected = 100.0 * F.normalize(feats, dim=-1) @ F.normalize(head, dim=-1).T
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, labels))
    assert model(pixel_values=feats).loss is None
    # head and logit scale are frozen buffers: the only parameter is the visual tower's
    assert [n for n, _ in model.named_parameters()] == ["visual.scale"]
    assert {n for n, _ in model.named_buffers()} == {"head", "logit_scale"}


def test_vit_b32_prunable_set() -> None:
    entry = MODELS.get("clip")
    cfg = {"arch": "ViT-B-32", "pretrained": None, "checkpoint": None, "templates": ["a photo of a {}."]}
    entry.check_available(cfg)  # random init needs nothing
    bundle = entry.build(cfg, _info(("cat", "dog")), CPU)
    assert bundle.modality == "image" and bundle.info["source"] == "random:ViT-B-32"
    assert len(bundle.prunable) == 48
    assert sum(p.numel() for p in bundle.prunable.values()) == 84_934_656
    assert bundle.info["prunable_weights"] == 84_934_656
    params = dict(bundle.model.named_parameters())
    for name, p in bundle.prunable.items():
        assert params[name] is p and p.dim() == 2
        assert name.startswith("visual.transformer.resblocks.")
    kinds = {n.split(".", 4)[-1] for n in bundle.prunable}
    assert kinds == {"attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}
    assert all(n.startswith("visual.") for n in params)  # the text tower is gone
    assert bundle.model.head.shape == (2, 512)
    assert bundle.preprocess is not None


def test_tiny_clip_forward_backward() -> None:
    cfg = yaml.safe_load((CONF / "tiny_clip.yaml").read_text())
    entry = MODELS.get("tiny_clip")
    entry.check_available(cfg)
    info = TASKS.get("mnist").info
    bundle = entry.build(cfg, info, CPU)
    assert bundle.info["source"] == "random:tiny_clip"
    assert len(bundle.prunable) == 4 * cfg["layers"]
    assert bundle.info["prunable_weights"] == sum(p.numel() for p in bundle.prunable.values())
    from PIL import Image

    x = torch.stack([bundle.preprocess(Image.new("RGB", (28, 28), color=(i * 20, 0, 0))) for i in range(4)])
    assert x.shape == (4, 3, 32, 32)
    out = bundle.model(pixel_values=x, labels=torch.tensor([0, 1, 2, 3]))
    assert out.logits.shape == (4, 10)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for p in bundle.prunable.values():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    # the same init seed gives the same model
    again = entry.build(cfg, info, CPU)
    torch.testing.assert_close(again.model.head, bundle.model.head)


def test_configs_match_code() -> None:
    clip_cfg = yaml.safe_load((CONF / "clip.yaml").read_text())
    assert clip_cfg["name"] == "clip" and clip_cfg["arch"] == "ViT-B-32" and clip_cfg["pretrained"] == "openai"
    assert clip_cfg["checkpoint"] is None
    tiny = yaml.safe_load((CONF / "tiny_clip.yaml").read_text())
    assert tiny["name"] == "tiny_clip"
    assert set(clip_mod.TINY_DEFAULTS) <= set(tiny)


def test_known_hub_table_matches_open_clip() -> None:
    from open_clip.pretrained import get_pretrained_cfg

    for (arch, tag), repo in clip_mod._KNOWN_HUB.items():
        assert get_pretrained_cfg(arch, tag)["hf_hub"] == repo + "/"
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    assert clip_mod._HF_WEIGHT_FILES == (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)


def test_clip_unavailable_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(clip_mod, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr(clip_mod, "hf_cached", lambda *a, **k: False)
    cfg = {"arch": "ViT-B-32", "pretrained": "openai", "checkpoint": None}
    with pytest.raises(UserError) as err:
        MODELS.get("clip").check_available(cfg)
    msg = str(err.value)
    assert "\n" not in msg and "model.checkpoint=" in msg and "ViT-B-32 'openai'" in msg

    # a missing checkpoint path is named
    with pytest.raises(UserError, match="does not exist") as err:
        MODELS.get("clip").check_available({**cfg, "checkpoint": str(tmp_path / "nope.bin")})
    assert "\n" not in str(err.value)
    # an existing checkpoint file, or weights in the cache, or a reachable hub is enough
    ckpt = tmp_path / "open_clip_pytorch_model.bin"
    ckpt.write_bytes(b"")
    MODELS.get("clip").check_available({**cfg, "checkpoint": str(ckpt)})
    monkeypatch.setattr(clip_mod, "hub_reachable", lambda *a, **k: True)
    MODELS.get("clip").check_available(cfg)


def test_clip_cached_weights_found(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_cached(repo: str, filename: str = "config.json") -> bool:
        seen.append((repo, filename))
        return False

    monkeypatch.setattr(clip_mod, "hf_cached", fake_cached)
    assert clip_mod.cached_weights("ViT-B-32", "openai") is None
    assert seen == [
        ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"),
        ("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
    ]


def test_checkpoint_file_loads(tmp_path: Path) -> None:
    """A saved open_clip state dict passed as model.checkpoint is loaded (source checkpoint:<path>)."""
    import open_clip

    ref = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    with torch.no_grad():
        ref.visual.proj.mul_(0).add_(0.5)
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(ref.state_dict(), path)
    cfg = {"arch": "ViT-B-32", "pretrained": "openai", "checkpoint": str(path), "templates": ["{}"]}
    bundle = MODELS.get("clip").build(cfg, _info(("a", "b")), CPU)
    assert bundle.info["source"] == f"checkpoint:{path.resolve()}" and bundle.info["quick_gelu"] is True
    assert torch.all(bundle.model.visual.proj == 0.5)
    torch.testing.assert_close(bundle.model.logit_scale, ref.logit_scale.detach().reshape(()))
