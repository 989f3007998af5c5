"""CLIP visual towers with a frozen zero-shot head (SEVEN §V, Table I): `clip` and `tiny_clip`.

The text tower encodes every class name with CLIP-style prompt templates; per class the normalized
embeddings are averaged and renormalized, giving a frozen head [num_classes, dim]. The text tower is
then freed. Forward: ``logits = logit_scale.exp() * normalize(visual(pixel_values)) @ head.T``, and
``loss = cross_entropy(logits, labels)`` when labels are given. Only the visual tower has parameters
(the head and the logit scale are buffers), so an optimizer built from ``model.parameters()`` never
touches them.

Prunable set (ALGORITHMS.md §0, as ISP's ``clip_assets/code/pruner.py``): every visual block's packed
QKV ``attn.in_proj_weight``, ``attn.out_proj.weight``, ``mlp.c_fc.weight`` and ``mlp.c_proj.weight``:
48 tensors / 84,934,656 weights for ViT-B/32. Never the patch embedding, the output projection,
biases or LayerNorms.

open_clip is imported inside functions only, so importing the registry stays fast.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seven_bench.errors import UserError
from seven_bench.models.base import MODELS, ModelBundle, ModelEntry
from seven_bench.models.clip_head import DEFAULT_TEMPLATES as DEFAULT_TEMPLATES
from seven_bench.models.clip_head import TEMPLATES as TEMPLATES
from seven_bench.models.clip_head import build_text_head, templates_for
from seven_bench.sources import hf_cached, hub_reachable
from seven_bench.tasks.base import TaskInfo

# Which Hugging Face repo / files open_clip 3.x downloads for a pretrained tag. open_clip's
# pretrained.py: ViT-B-32 'openai' -> hf_hub "timm/vit_base_patch32_clip_224.openai/" (a trailing
# slash = default filename). download_pretrained_from_hf tries the safetensors alternative
# "open_clip_model.safetensors" first, then "open_clip_pytorch_model.bin". The table spares the
# availability check an open_clip import for the default model; other arch/tag pairs are looked up
# in open_clip itself (tests check the table against open_clip).
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_KNOWN_HUB = {("ViT-B-32", "openai"): "timm/vit_base_patch32_clip_224.openai"}

PRUNABLE_PATTERN = re.compile(
    r"^visual\.transformer\.resblocks\.\d+\."
    r"(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$"
)

TINY_DEFAULTS = {
    "image_size": 32,
    "patch_size": 8,
    "width": 64,
    "layers": 2,
    "heads": 2,
    "embed_dim": 32,
    "text_width": 64,
    "text_layers": 2,
    "text_heads": 2,
    "init_seed": 0,
}


# --------------------------------------------------------------------------------------- module
@dataclass
class ClassifierOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class ZeroShotClassifier(nn.Module):
    """A CLIP visual tower followed by a frozen, normalized zero-shot text head."""

    def __init__(
        self,
        visual: nn.Module,
        head: torch.Tensor,
        logit_scale: torch.Tensor | float,
        class_names: Sequence[str] = (),
    ):
        super().__init__()
        if head.ndim != 2:
            raise ValueError(f"head must be [num_classes, dim], got {tuple(head.shape)}")
        self.visual = visual
        self.register_buffer("head", F.normalize(head.detach().float(), dim=-1).clone())
        self.register_buffer(
            "logit_scale", torch.as_tensor(logit_scale, dtype=torch.float32).detach().clone().reshape(())
        )
        self.class_names = tuple(class_names)

    @property
    def num_classes(self) -> int:
        return self.head.shape[0]

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(pixel_values), dim=-1)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **_: Any) -> ClassifierOutput:
        feats = self.image_features(pixel_values)
        logits = self.logit_scale.exp() * feats @ self.head.to(feats.dtype).T
        loss = F.cross_entropy(logits.float(), labels.long()) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss)


# ------------------------------------------------------------------------------------ text head
def _prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if PRUNABLE_PATTERN.match(n)}


def _finish(
    clip_model: nn.Module,
    tokenizer: Any,
    preprocess: Any,
    cfg: Mapping[str, Any],
    task_info: TaskInfo,
    device: torch.device,
    info: dict[str, Any],
) -> ModelBundle:
    """Head from the text tower, then drop the text tower; bundle the visual classifier."""
    templates = templates_for(task_info.name, _opt_list(cfg.get("templates")))
    clip_model.eval()

    def encode(texts: list[str]) -> torch.Tensor:
        return clip_model.encode_text(tokenizer(texts).to(device))

    head = build_text_head(encode, task_info.class_names, templates)
    if head.shape[0] != task_info.num_labels:
        raise UserError(f"task {task_info.name} has {task_info.num_labels} labels but {head.shape[0]} class names")
    logit_scale = clip_model.logit_scale.detach().float().clone()
    model = ZeroShotClassifier(clip_model.visual, head, logit_scale, task_info.class_names).to(device)
    del clip_model, encode  # the text tower goes with the CLIP object once the builder returns
    model.train()
    prunable = _prunable(model)
    n_blocks = len(model.visual.transformer.resblocks)
    if len(prunable) != 4 * n_blocks:
        raise RuntimeError(f"expected {4 * n_blocks} prunable tensors in the visual tower, found {len(prunable)}")
    info.update(
        num_classes=int(head.shape[0]),
        num_templates=len(templates),
        logit_scale=float(logit_scale.exp()),
        prunable_tensors=len(prunable),
        prunable_weights=int(sum(p.numel() for p in prunable.values())),
        trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
    )
    return ModelBundle(
        model=model, prunable=prunable, modality="image", tokenizer=None, preprocess=preprocess, info=info
    )


def _opt_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# ------------------------------------------------------------------------------ weights lookup
def _hub_repo(arch: str, tag: str) -> tuple[str | None, str | None]:
    """(hf repo id, explicit filename or None) that open_clip downloads for arch/tag; (None, None) if
    the tag only has a URL. Raises UserError for an unknown arch/tag."""
    if (arch, tag) in _KNOWN_HUB:
        return _KNOWN_HUB[(arch, tag)], None
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    pcfg = get_pretrained_cfg(arch, tag)
    if not pcfg:
        tags = list_pretrained_tags_by_model(arch)
        raise UserError(
            f"open_clip has no pretrained tag '{tag}' for {arch}: choose one of {', '.join(tags) or '(none)'}"
        )
    hub = pcfg.get("hf_hub", "")
    if not hub:
        return None, None
    repo, filename = hub.rstrip("/"), None
    if not hub.endswith("/"):
        repo, filename = hub.rsplit("/", 1)
    return repo, filename


def _weight_files(filename: str | None) -> tuple[str, ...]:
    if filename is None:
        return _HF_WEIGHT_FILES
    alts = [filename[:-4] + ".safetensors"] if filename.endswith((".bin", ".pth")) else []
    return (*alts, filename)


def cached_weights(arch: str, tag: str) -> str | None:
    """Path of the open_clip weights for arch/tag already in the local HF cache, else None."""
    repo, filename = _hub_repo(arch, tag)
    if repo is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for f in _weight_files(filename):
        if hf_cached(repo, f):
            found = try_to_load_from_cache(repo, f)
            if isinstance(found, str):
                return found
    return None


def _arch_known(arch: str) -> bool:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return True  # let the build report it
    return any((Path(loc) / "model_configs" / f"{arch}.json").is_file() for loc in spec.submodule_search_locations)


def _checkpoint_file(path: Path) -> Path | None:
    """The weights file in an open_clip / HF model folder, open_clip's order of preference."""
    for name in (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "open_clip_pytorch_model.bin",
        "open_clip_pytorch_model.pth",
    ):
        if (path / name).is_file():
            return path / name
    found = (
        sorted(path.glob("*.safetensors"))
        + sorted(path.glob("*.bin"))
        + sorted(path.glob("*.pth"))
        + sorted(path.glob("*.pt"))
    )
    return found[0] if found else None


def check_clip(cfg: Mapping[str, Any]) -> None:
    arch = str(cfg.get("arch") or "ViT-B-32")
    tag = cfg.get("pretrained")
    ckpt = cfg.get("checkpoint")
    if not _arch_known(arch):
        raise UserError(f"model.arch={arch} is not an open_clip model config (e.g. ViT-B-32, ViT-B-16)")
    if ckpt:
        path = Path(str(ckpt)).expanduser()
        if not path.exists():
            raise UserError(
                f"model.checkpoint={ckpt} does not exist: pass an open_clip checkpoint file "
                "(open_clip_pytorch_model.bin / open_clip_model.safetensors) or a folder holding one"
            )
        if path.is_dir() and not (path / "open_clip_config.json").is_file() and _checkpoint_file(path) is None:
            raise UserError(
                f"model.checkpoint={ckpt} is a folder without open_clip weights (*.safetensors, *.bin, *.pth)"
            )
        return
    if not tag:
        return  # random init: nothing to fetch
    tag = str(tag)
    if cached_weights(arch, tag) is not None or hub_reachable():
        return
    raise UserError(
        f"model=clip needs the {arch} '{tag}' weights, which are not in the Hugging Face cache and the hub is "
        f"unreachable: download them on a machine with internet (seven-bench-prepare) or pass "
        f"model.checkpoint=<path to open_clip_pytorch_model.bin>"
    )


# ------------------------------------------------------------------------------------- builders
def build_clip(cfg: Mapping[str, Any], task_info: TaskInfo, device: torch.device) -> ModelBundle:
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    check_clip(cfg)
    device = torch.device(device)
    arch = str(cfg.get("arch") or "ViT-B-32")
    tag = cfg.get("pretrained")
    tag = str(tag) if tag else None
    ckpt = cfg.get("checkpoint")
    tag_cfg = get_pretrained_cfg(arch, tag) if tag else {}
    quick_gelu = cfg.get("quick_gelu")
    auto_gelu = quick_gelu is None
    quick_gelu = bool(tag_cfg.get("quick_gelu", False)) if auto_gelu else bool(quick_gelu)
    pp_over = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    tokenizer_name = arch

    if ckpt:
        path = Path(str(ckpt)).expanduser().resolve()
        if path.is_dir() and (path / "open_clip_config.json").is_file():
            # an open_clip / HF model folder: its own config decides the architecture
            name = f"local-dir:{path}"
            clip_model = open_clip.create_model(name, device=device, force_quick_gelu=bool(cfg.get("quick_gelu")))
            tokenizer_name = name
            quick_gelu = None if auto_gelu else quick_gelu
        else:
            weights = path if path.is_file() else _checkpoint_file(path)
            clip_model = open_clip.create_model(
                arch, pretrained=str(weights), device=device, force_quick_gelu=quick_gelu, force_preprocess_cfg=pp_over
            )
        source = f"checkpoint:{path}"
    elif tag:
        cached = cached_weights(arch, tag)
        if cached is not None:  # straight from the cache: no network round trip
            clip_model = open_clip.create_model(
                arch, pretrained=cached, device=device, force_quick_gelu=quick_gelu, force_preprocess_cfg=pp_over
            )
        else:
            clip_model = open_clip.create_model(arch, pretrained=tag, device=device, force_quick_gelu=quick_gelu)
        source = f"hub:{arch}/{tag}"
    else:
        clip_model = open_clip.create_model(arch, pretrained=None, device=device, force_quick_gelu=quick_gelu)
        source = f"random:{arch}"

    preprocess = image_transform_v2(PreprocessCfg(**clip_model.visual.preprocess_cfg), is_train=False)
    tokenizer = open_clip.get_tokenizer(tokenizer_name)
    info = {
        "source": source,
        "arch": arch,
        "pretrained": tag,
        "quick_gelu": quick_gelu,
        "image_size": list(_pair(clip_model.visual.preprocess_cfg["size"])),
    }
    return _finish(clip_model, tokenizer, preprocess, cfg, task_info, device, info)


def _pair(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)  # type: ignore[return-value]


def tiny_clip_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    c = {k: (v if cfg.get(k) is None else cfg.get(k)) for k, v in TINY_DEFAULTS.items()}
    width, heads = int(c["width"]), int(c["heads"])
    if width % heads or c["text_width"] % c["text_heads"]:
        raise UserError("tiny_clip: width must be divisible by heads (and text_width by text_heads)")
    return {
        "embed_dim": int(c["embed_dim"]),
        "vision_cfg": {
            "image_size": int(c["image_size"]),
            "patch_size": int(c["patch_size"]),
            "width": width,
            "head_width": width // heads,
            "layers": int(c["layers"]),
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,  # open_clip's bundled BPE tokenizer
            "width": int(c["text_width"]),
            "heads": int(c["text_heads"]),
            "layers": int(c["text_layers"]),
        },
    }


def build_tiny_clip(cfg: Mapping[str, Any], task_info: TaskInfo, device: torch.device) -> ModelBundle:
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    device = torch.device(device)
    model_cfg = tiny_clip_config(cfg)
    seed = int(TINY_DEFAULTS["init_seed"] if cfg.get("init_seed") is None else cfg.get("init_seed"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clip_model = open_clip.CLIP(**model_cfg)
    clip_model.to(device)
    size = model_cfg["vision_cfg"]["image_size"]
    preprocess = image_transform_v2(PreprocessCfg(size=size), is_train=False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # the bundled BPE, no download
    info = {
        "source": "random:tiny_clip",
        "arch": "tiny_clip",
        "init_seed": seed,
        "image_size": [size, size],
        "config": model_cfg,
    }
    return _finish(clip_model, tokenizer, preprocess, cfg, task_info, device, info)


def _always_available(cfg: Mapping[str, Any]) -> None:
    tiny_clip_config(cfg)


MODELS.add(
    "clip",
    ModelEntry(
        name="clip",
        modality="image",
        check_available=check_clip,
        build=build_clip,
        description="open_clip ViT-B-32 (openai weights) visual tower + frozen zero-shot head (SEVEN Table I)",
    ),
)
MODELS.add(
    "tiny_clip",
    ModelEntry(
        name="tiny_clip",
        modality="image",
        check_available=_always_available,
        build=build_tiny_clip,
        description="random-init 2-layer CLIP (width 64, 32x32 images) for tests and smoke runs",
    ),
)
