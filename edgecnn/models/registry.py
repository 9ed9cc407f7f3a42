"""Model registry and the single factory, after timm's ``register_model`` / ``create_model``.

The registry itself holds only names and defaults, so listing models needs no TensorFlow;
the builder modules import it when a model is actually created.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: str                     # "module:function"
    description: str
    default_cfg: dict[str, Any] = field(default_factory=dict)
    seed_params: int | None = None   # the seed's parameter count at its published input size


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> ModelInfo:
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} registered twice")
    _REGISTRY[info.name] = info
    return info


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, **cfg: Any):
    """Build a Keras model by registry name; ``cfg`` overrides the model's defaults."""
    info = model_info(name)
    unknown = set(cfg) - set(info.default_cfg)
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {sorted(unknown)}; known: {sorted(info.default_cfg)}")
    module, func = info.builder.split(":")
    builder: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return builder(**{**info.default_cfg, **cfg})


register_model(ModelInfo(
    name="basic_cnn",
    builder="edgecnn.models.basic_cnn:build_basic_cnn",
    description="The seed's Basic CNN: 3 conv blocks (32, 64, 64), dense 512, 50×50 input",
    default_cfg={"input_size": 50, "seed_order": False, "dropout": True},
    seed_params=665_890,
))
register_model(ModelInfo(
    name="vgg13",
    builder="edgecnn.models.vgg13:build_vgg13",
    description="The seed's VGG13 with BatchNorm: 5 conv blocks (64…512), dense 4096-4096-1000-2",
    # None means "224 where a GPU is found, 64 on CPU" (resolved by default_input_size()).
    default_cfg={"input_size": None, "seed_order": False, "dropout": True},
    seed_params=133_055_738,
))
# timm-style width variants (the name's suffix is the width ×100), so `train --model` picks one.
for _width in (100, 125):
    register_model(ModelInfo(
        name=f"mobile_student_{_width}",
        builder="edgecnn.models.mobile_student:build_mobile_student",
        description=f"Small-device student, width {_width / 100:g}: strided stem + 5 depthwise-separable blocks",
        default_cfg={"input_size": 50, "width": _width / 100, "seed_order": False, "dropout": True},
    ))
