"""Drop-in replacements for two layers, swapped into a built network by :func:`use_fast_layers`.

They subclass the layers they replace and add no parameters or buffers, so state dicts keep the
reference's layout: weights load into and save from a swapped network unchanged.

- :class:`FastInstanceNorm2d`: ``nn.InstanceNorm2d`` (no affine, no running statistics) computed as
  ``F.batch_norm`` on a batch of one during training, and ``F.group_norm`` with one group per
  channel otherwise: the same function, 1.6-5x faster on CPU, and with correct input gradients in
  channels_last. (On torch 2.14 CPU, ``nn.InstanceNorm2d`` returns wrong input gradients when the
  incoming gradient is channels_last at batch size 1; ``tests/nets/test_fast_layers.py`` checks
  both against an fp64 NCHW reference.)
- :class:`WinogradConv2d`: a 3x3, stride-1 ``nn.Conv2d`` run by NNPACK's Winograd kernels, for fp32
  inference on CPUs without native bf16. It does about a third of the multiplications, and measured
  2.8x faster than the default kernel on this project's AVX2 machines for ResNet blocks' 256-channel
  convolutions, at a relative error near 1e-5.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class FastInstanceNorm2d(nn.InstanceNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.affine or self.track_running_stats or x.dim() != 4:
            return super().forward(x)
        if self.training and x.shape[0] == 1 and x.requires_grad:
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        return F.group_norm(x, x.shape[1], eps=self.eps)


def nnpack_available() -> bool:
    """Whether NNPACK can run here (the check also initialises it, which its first call needs)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


class WinogradConv2d(nn.Conv2d):
    def _conv_forward(self, x, weight, bias):
        if x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_grad_enabled():
            return super()._conv_forward(x, weight, bias)
        if bias is None:
            bias = weight.new_zeros(weight.shape[0])
        return torch._nnpack_spatial_convolution(x.contiguous(), weight.contiguous(), bias, list(self.padding))


def winograd_eligible(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.kernel_size == (3, 3) and m.stride == (1, 1) and m.dilation == (1, 1)
            and m.groups == 1 and m.padding_mode == "zeros" and isinstance(m.padding, tuple))


def use_fast_layers(net: nn.Module, winograd: bool = False) -> nn.Module:
    """Swap ``net``'s instance norms (and with ``winograd``, its eligible 3x3 convolutions) for the
    fast variants, in place. Returns ``net``."""
    winograd = winograd and nnpack_available()
    for m in net.modules():
        if type(m) is nn.InstanceNorm2d:
            m.__class__ = FastInstanceNorm2d
        elif winograd and winograd_eligible(m):
            m.__class__ = WinogradConv2d
    return net
