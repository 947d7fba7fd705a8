"""The Inception-v3 network that FID and KID are defined with, loaded from a user's weights file.

FID numbers are only comparable when computed with the same network: the TensorFlow Inception of
2015 ported by pytorch-fid, whose blocks differ slightly from torchvision's. We build that network
from pytorch-fid's blocks (``pip install pytorch-fid``: small, Apache-2.0; it saves re-typing five
patched Inception blocks) and load the weights file it uses, ``pt_inception-2015-12-05-6726825d.pth``,
which the user downloads once (nothing is downloaded at run time). Features are the 2048 pooled
activations, from images resized to 299x299 (bilinear) and scaled to [-1, 1], as pytorch-fid does.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import I2IError, UsageError, first_line

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
HOW_TO_GET = (f"download {WEIGHTS_URL} once and pass it with --inception-weights FILE "
              "(FID and KID need it; the other metrics do not)")


def fid_inception_architecture() -> nn.Module:
    """torchvision's Inception-v3 with pytorch-fid's patched blocks and 1008 classes, random weights."""
    try:
        from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
    except ImportError:
        raise UsageError("FID and KID need the pytorch-fid package: pip install pytorch-fid") from None
    from torchvision.models.inception import Inception3

    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class InceptionFeatures(nn.Module):
    """Bx3xHxW images in [0, 1] -> Bx2048 pooled features."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))
        for block in (n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
                      n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_inception(path: str | Path) -> InceptionFeatures:
    """The FID network with the weights in ``path`` (a pytorch-fid state dict, read with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--inception-weights {path}: no such file; {HOW_TO_GET}")
    net = fid_inception_architecture()
    from .runs import torch_load

    try:
        state = torch_load(path)  # weights_only; torch's advice to unpickle code never reaches the user
        net.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001
        raise I2IError(f"{path}: not pytorch-fid Inception weights ({first_line(e)}); {HOW_TO_GET}") from None
    return InceptionFeatures(net)
