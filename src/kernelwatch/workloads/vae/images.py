"""The ViT VAE's inputs and its quality measure: scikit-image's photographs, and SSIM and
PSNR of a reconstruction against eager's."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from kernelwatch.errors import Unavailable

# The photographs of scikit-image (`skimage.data`) shipped inside its wheel.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
          "hubble_deep_field", "retina")
# PSNR of identical images is infinite; the history records this ceiling instead.
PSNR_CEILING_DB = 100.0


@functools.cache
def _photos() -> tuple[torch.Tensor, ...]:
    try:
        from skimage import data
    except ImportError as exc:
        raise Unavailable(f"the VAE's input photographs come from scikit-image, which does not "
                          f"import here ({exc}); pip install 'kernelwatch[vae]'") from exc
    return tuple(torch.from_numpy(getattr(data, name)().copy()).permute(2, 0, 1)
                 for name in PHOTOS)


def photographs(count: int, size: int, offset: int = 0) -> torch.Tensor:
    """[count, 3, size, size] float32 in [-1, 1]: scikit-image's sample photographs, each
    resized (antialiased) so its short side is `size` times 1, 1.5 or 2 and cropped at one of
    several places, some mirrored. Image i of a batch is crop `offset + i` of a fixed
    sequence, so `offset` gives fresh images that are still real photographs."""
    photos = _photos()
    out = []
    for i in range(offset, offset + count):
        photo = photos[i % len(photos)].float()
        k = i // len(photos)
        scale = (1.0, 1.5, 2.0)[k % 3]
        h, w = photo.shape[1:]
        short = round(size * scale)
        new = (short, max(short, round(w * short / h))) if h <= w else (
            max(short, round(h * short / w)), short)
        img = F.interpolate(photo[None], size=new, mode="bilinear", antialias=True,
                            align_corners=False)[0]
        # Where the crop sits: centre, then the corners, in turn.
        top = ((new[0] - size) // 2, 0, new[0] - size, 0, new[0] - size)[(k // 3) % 5]
        left = ((new[1] - size) // 2, 0, new[1] - size, new[1] - size, 0)[(k // 3) % 5]
        img = img[:, top:top + size, left:left + size]
        if (k // 15) % 2:
            img = img.flip(-1)
        out.append(img)
    return (torch.stack(out) / 127.5 - 1.0).clamp(-1, 1)


@dataclass
class Quality:
    """A reconstruction against eager's on the same images."""

    ssim: float  # mean over the batch, scikit-image's structural_similarity
    psnr: float  # dB over the batch (peak-to-peak range 2: pixels in [-1, 1]), at most 100


def quality(images: torch.Tensor, reference: torch.Tensor) -> Quality:
    """SSIM and PSNR of `images` against `reference` ([B, 3, H, W] in [-1, 1])."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = images.detach().float().clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy()
    b = reference.detach().float().clamp(-1, 1).permute(0, 2, 3, 1).cpu().numpy()
    ssim = sum(structural_similarity(x, y, data_range=2.0, channel_axis=-1)
               for x, y in zip(a, b, strict=True)) / len(a)
    psnr = (PSNR_CEILING_DB if (a == b).all()
            else min(float(peak_signal_noise_ratio(b, a, data_range=2.0)), PSNR_CEILING_DB))
    return Quality(float(ssim), psnr)
