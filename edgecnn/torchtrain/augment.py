"""edgecnn.data.pipeline's augmentation in PyTorch, on NCHW float [0, 1] batches on the GPU.

The same transforms and ranges as the tf.data pipeline (its module docstring says why each is
there): the 8 dihedral views, H&E stain jitter in HED space, then colour jitter (brightness,
contrast, saturation, hue). The random draws differ from TensorFlow's, the distributions do not.
"""

from __future__ import annotations

import torch

from edgecnn.data.colour import BRIGHTNESS, CONTRAST, HED_FROM_RGB, HUE, OD_FLOOR, RGB_FROM_HED, SATURATION


def _uniform(b: int, lo: float, hi: float, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(b, 1, 1, 1, generator=gen, device=like.device) * (hi - lo) + lo


def dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    for flip in (lambda t: t.transpose(2, 3), lambda t: t.flip(3), lambda t: t.flip(2)):
        x = torch.where(_uniform(b, 0, 1, x, gen) < 0.5, flip(x), x)
    return x


def stain_jitter(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    to_hed = torch.tensor(HED_FROM_RGB, dtype=x.dtype, device=x.device)
    to_rgb = torch.tensor(RGB_FROM_HED, dtype=x.dtype, device=x.device)
    alpha = torch.rand(b, 3, 1, 1, generator=gen, device=x.device) * 2 * sigma + 1 - sigma
    beta = torch.rand(b, 3, 1, 1, generator=gen, device=x.device) * 2 * sigma - sigma
    od = -torch.log(x.clamp_min(OD_FLOOR))
    hed = torch.einsum("bchw,cd->bdhw", od, to_hed) * alpha + beta
    return torch.exp(-torch.einsum("bdhw,dc->bchw", hed, to_rgb)).clamp(0.0, 1.0)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(1)
    h6 = torch.remainder(h, 1.0) * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choose = lambda *c: torch.stack(c, 0).gather(0, i.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.stack([choose(v, q, p, p, t, v), choose(t, v, v, q, p, p), choose(p, p, t, v, v, q)], 1)


def colour_jitter(x: torch.Tensor, scale: float, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    x = x + _uniform(b, -BRIGHTNESS * scale, BRIGHTNESS * scale, x, gen)
    mean = x.mean(dim=(2, 3), keepdim=True)   # per image and channel, as tf's reduce_mean over H, W
    x = ((x - mean) * _uniform(b, 1 - CONTRAST * scale, 1 + CONTRAST * scale, x, gen) + mean).clamp(0.0, 1.0)
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0:1] + _uniform(b, -HUE * scale, HUE * scale, x, gen), 1.0)
    s = (hsv[:, 1:2] * _uniform(b, 1 - SATURATION * scale, 1 + SATURATION * scale, x, gen)).clamp(0.0, 1.0)
    return hsv_to_rgb(torch.cat([h, s, hsv[:, 2:3]], 1)).clamp(0.0, 1.0)


def augment(x: torch.Tensor, gen: torch.Generator, jitter: float = 1.0, stain: float = 0.0) -> torch.Tensor:
    x = dihedral(x, gen)
    if stain > 0:
        x = stain_jitter(x, stain, gen)
    if jitter > 0:
        x = colour_jitter(x, jitter, gen)
    return x
