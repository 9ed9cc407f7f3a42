"""The Keras networks rebuilt in PyTorch, layer for layer, with their weights in Keras' layout.

Each module keeps the Keras layer names, and ``keras_weights`` returns ``{"<layer>/<i>": array}``
in the order ``layer.get_weights()`` has: conv kernels HWIO, dense kernels (in, out), BN as
gamma, beta, moving mean, moving variance. The flatten before the dense head is taken in NHWC
order, so the first dense kernel needs no reshuffle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BN_EPS = 1e-3          # Keras' default epsilon: the ported BN must compute the same thing
BN_MOMENTUM = 0.1      # torch's convention for Keras' momentum 0.9 (edgecnn.models.layers)
VGG13_FILTERS = (64, 128, 256, 512, 512)
VGG13_DENSE = (4096, 4096, 1000)


class VGG13(nn.Module):
    """edgecnn.models.vgg13: per block conv(relu), conv → BN → ReLU, max-pool, dropout .25;
    dense 4096, 4096, 1000 (relu, dropout .5); 2 logits (softmax in ``probs``)."""

    keras_name = "vgg13"

    def __init__(self, input_size: int = 50, dropout: bool = True):
        super().__init__()
        self.input_size = input_size
        self.convs = nn.ModuleDict()
        c_in, size = 3, input_size
        for i, f in enumerate(VGG13_FILTERS, start=1):
            self.convs[f"block{i}_conv1"] = nn.Conv2d(c_in, f, 3, padding=1)
            self.convs[f"block{i}_2_conv"] = nn.Conv2d(f, f, 3, padding=1)
            self.convs[f"block{i}_2_bn"] = nn.BatchNorm2d(f, eps=BN_EPS, momentum=BN_MOMENTUM)
            c_in, size = f, size // 2
        self.drop_block = nn.Dropout(0.25 if dropout else 0.0)
        self.drop_dense = nn.Dropout(0.5 if dropout else 0.0)
        self.dense = nn.ModuleDict()
        n_in = c_in * size * size
        for j, units in enumerate(VGG13_DENSE, start=1):
            self.dense[f"fc{j}"] = nn.Linear(n_in, units)
            n_in = units
        self.dense["probs"] = nn.Linear(n_in, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for float NCHW pixels in [0, 1]."""
        for i in range(1, len(VGG13_FILTERS) + 1):
            x = torch.relu(self.convs[f"block{i}_conv1"](x))
            x = torch.relu(self.convs[f"block{i}_2_bn"](self.convs[f"block{i}_2_conv"](x)))
            x = self.drop_block(nn.functional.max_pool2d(x, 2))
        x = x.permute(0, 2, 3, 1).flatten(1)      # Keras' Flatten order (H, W, C)
        for j in range(1, len(VGG13_DENSE) + 1):
            x = self.drop_dense(torch.relu(self.dense[f"fc{j}"](x)))
        return self.dense["probs"](x)

    def layers(self):
        yield from self.convs.items()
        yield from self.dense.items()


MODELS = {"vgg13": VGG13}


def create_model(name: str, input_size: int = 50) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"edgecnn.torchtrain has no {name!r}; it has {sorted(MODELS)}")
    return MODELS[name](input_size=input_size)


def _layer_weights(module: nn.Module) -> list[torch.Tensor]:
    if isinstance(module, nn.Conv2d):
        return [module.weight.permute(2, 3, 1, 0), module.bias]
    if isinstance(module, nn.Linear):
        return [module.weight.t(), module.bias]
    if isinstance(module, nn.BatchNorm2d):
        return [module.weight, module.bias, module.running_mean, module.running_var]
    raise TypeError(f"no Keras layout for {type(module).__name__}")


def keras_weights(model: nn.Module, dtype=np.float32) -> dict[str, np.ndarray]:
    """``{"<keras layer>/<i>": array}``, the i-th of that layer's ``get_weights()``."""
    out = {}
    with torch.no_grad():
        for name, module in model.layers():
            for i, w in enumerate(_layer_weights(module)):
                out[f"{name}/{i}"] = w.detach().float().cpu().numpy().astype(dtype)
    return out


def load_keras_weights(model: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """The inverse of ``keras_weights`` (e.g. to score weights rounded for transport)."""
    with torch.no_grad():
        for name, module in model.layers():
            for i, w in enumerate(_layer_weights(module)):
                w.copy_(torch.from_numpy(np.asarray(weights[f"{name}/{i}"], dtype=np.float32)))
