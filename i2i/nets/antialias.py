"""Blurred down- and upsampling (Zhang, "Making Convolutional Networks Shift-Invariant Again",
ICML 2019), as used by CUT's antialiased ResNet generator (Park et al., ECCV 2020).

Both layers follow ``models/networks.py`` of taesungp/contrastive-unpaired-translation exactly:
the binomial filter of :func:`get_filter`, registered as a (persistent) buffer named ``filt`` with
one copy per channel, so the authors' state dicts (``model.7.filt`` ...) load with ``strict=True``.
The filters are fixed, never learned; :func:`i2i.nets.layers.init_weights` leaves them alone.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_BINOMIAL = {
    1: [1.0],
    2: [1.0, 1.0],
    3: [1.0, 2.0, 1.0],
    4: [1.0, 3.0, 3.0, 1.0],
    5: [1.0, 4.0, 6.0, 4.0, 1.0],
    6: [1.0, 5.0, 10.0, 10.0, 5.0, 1.0],
    7: [1.0, 6.0, 15.0, 20.0, 15.0, 6.0, 1.0],
}

PAD_LAYERS = {"refl": nn.ReflectionPad2d, "reflect": nn.ReflectionPad2d, "repl": nn.ReplicationPad2d,
              "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}


def get_filter(filt_size: int = 3) -> torch.Tensor:
    """The ``filt_size`` x ``filt_size`` binomial filter, normalised to sum 1 (float32, on the
    current default device, so that a meta-device build allocates nothing)."""
    if filt_size not in _BINOMIAL:
        raise ValueError(f"filter size {filt_size!r} not supported; choose from 1 to 7")
    a = torch.tensor(_BINOMIAL[filt_size], dtype=torch.float32)
    filt = a[:, None] * a[None, :]
    return filt / torch.sum(filt)


def get_pad_layer(pad_type: str):
    if pad_type not in PAD_LAYERS:
        raise ValueError(f"unknown pad type {pad_type!r}; choose from {', '.join(PAD_LAYERS)}")
    return PAD_LAYERS[pad_type]


class Downsample(nn.Module):
    """Blur with a binomial filter, then subsample by ``stride`` (a depthwise strided convolution).

    ``[B, C, H, W] -> [B, C, ceil(H / 2), ceil(W / 2)]`` for the defaults (filter 3, reflect padding
    of 1, stride 2); reflect padding needs H, W >= 2.
    """

    def __init__(self, channels: int, pad_type: str = "reflect", filt_size: int = 3, stride: int = 2,
                 pad_off: int = 0):
        super().__init__()
        self.filt_size = filt_size
        self.pad_off = pad_off
        lo, hi = (filt_size - 1) // 2, -(-(filt_size - 1) // 2)  # floor and ceil of (filt_size - 1) / 2
        self.pad_sizes = [p + pad_off for p in (lo, hi, lo, hi)]
        self.stride = stride
        self.off = int((stride - 1) / 2.0)
        self.channels = channels
        filt = get_filter(filt_size)
        self.register_buffer("filt", filt[None, None, :, :].repeat((channels, 1, 1, 1)))
        self.pad = get_pad_layer(pad_type)(self.pad_sizes)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if self.filt_size == 1:
            if self.pad_off == 0:
                return inp[:, :, :: self.stride, :: self.stride]
            return self.pad(inp)[:, :, :: self.stride, :: self.stride]
        return F.conv2d(self.pad(inp), self.filt, stride=self.stride, groups=inp.shape[1])

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}"


class Upsample(nn.Module):
    """Upsample by ``stride`` with a transposed depthwise convolution by a binomial filter (scaled by
    ``stride**2``), after replicate padding of 1, cropped as the authors do:
    ``[B, C, H, W] -> [B, C, 2H, 2W]`` for the defaults (filter 4, stride 2)."""

    def __init__(self, channels: int, pad_type: str = "repl", filt_size: int = 4, stride: int = 2):
        super().__init__()
        self.filt_size = filt_size
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = int((filt_size - 1) / 2)
        self.stride = stride
        self.off = int((stride - 1) / 2.0)
        self.channels = channels
        filt = get_filter(filt_size) * (stride**2)
        self.register_buffer("filt", filt[None, None, :, :].repeat((channels, 1, 1, 1)))
        self.pad = get_pad_layer(pad_type)([1, 1, 1, 1])

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        ret_val = F.conv_transpose2d(self.pad(inp), self.filt, stride=self.stride, padding=1 + self.pad_size,
                                     groups=inp.shape[1])[:, :, 1:, 1:]
        if self.filt_odd:
            return ret_val
        return ret_val[:, :, :-1, :-1]

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}"
