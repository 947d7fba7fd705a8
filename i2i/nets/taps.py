"""Intermediate features of a generator whose body is one ``nn.Sequential`` named ``model``.

CUT's PatchNCE loss (Park et al., ECCV 2020) compares the encoder's features of an image and of its
translation at a few layers of the generator's ``model`` Sequential (layers 0, 4, 8, 12 and 16 of the
antialiased ``resnet_9blocks``). The authors get them from ``netG(x, layers, encode_only=True)``;
here any such generator mixes in :class:`FeatureTaps`:

    feats = G.features(x, [0, 4, 8, 12, 16])      # outputs of G.model[0], G.model[4], ...
    channels = G.feature_channels([0, 4, 8, 12, 16])  # [3, 128, 256, 256, 256] at ngf=64
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device.type == "meta" or b.device.type == "meta":
        return True  # no storage to compare; assume the worst (a clone costs nothing there)
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class FeatureTaps:
    """Mixin for ``nn.Module`` subclasses with an ``nn.Sequential`` attribute ``model``: the outputs of
    chosen layers of it, and their channel counts."""

    model: nn.Sequential

    def _tap_ids(self, layers: Sequence[int]) -> list[int]:
        n = len(self.model)
        if isinstance(layers, (int, torch.Tensor)) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a sequence of layer ids in 0..{n - 1}, not {type(layers).__name__}")
        ids = list(layers)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
                raise ValueError(f"layer id {i!r} is out of range: this {type(self).__name__} has layers 0..{n - 1}")
        return ids

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of ``self.model[i]`` for each ``i`` in ``layers``, in the order given (repeats
        allowed), running the model only up to ``max(layers)`` (the authors' ``encode_only=True``).

        Each tapped tensor is exactly what ``self.model[: i + 1](x)`` returns: should a later in-place
        layer (``nn.ReLU(inplace=True)``) be about to overwrite a tapped tensor, it gets a copy. Raises
        ValueError for a layer id outside ``0..len(self.model) - 1``.
        """
        ids = self._tap_ids(layers)
        if not ids:
            return []
        wanted, stop = set(ids), max(ids)
        taps: dict[int, torch.Tensor] = {}
        feat = x
        for i in range(stop + 1):
            layer = self.model[i]
            if getattr(layer, "inplace", False) and any(_shares_memory(feat, t) for t in taps.values()):
                feat = feat.clone()
            feat = layer(feat)
            if i in wanted:
                taps[i] = feat
        return [taps[i] for i in ids]

    def _tap_input_channels(self) -> int:
        """Channels of the model's input: those of its first convolution or linear layer."""
        for m in self.model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                return m.in_channels
            if isinstance(m, nn.Linear):
                return m.in_features
        raise TypeError(f"cannot tell the input channels of this {type(self).__name__}")

    def _tap_input_size(self) -> int:
        m = getattr(self, "size_multiple", 1)
        s = max(getattr(self, "min_size", m), m, 8)
        return -(-s // m) * m

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channel counts of :meth:`features` for ``layers``, from a forward pass on the meta device
        (no memory, no arithmetic; the network's own weights are neither used nor moved, and may be on
        any device, in any dtype, or on the meta device themselves)."""
        ids = self._tap_ids(layers)
        if not ids:
            return []
        from torch.func import functional_call

        stop = max(ids)
        head = self.model[: stop + 1]
        meta = {name: torch.empty(t.shape, dtype=torch.float32 if t.is_floating_point() else t.dtype, device="meta")
                for name, t in [*head.named_parameters(), *head.named_buffers()]}  # fp32 whatever the net's dtype
        s = self._tap_input_size()
        x = torch.empty(1, self._tap_input_channels(), s, s, device="meta")
        with torch.no_grad():
            probe = _Head(head)
            feats = functional_call(probe, {f"head.{k}": v for k, v in meta.items()}, (x, ids))
        return [int(f.shape[1]) for f in feats]


class _Head(nn.Module, FeatureTaps):
    """Wraps the first layers of a model so :func:`torch.func.functional_call` can run them."""

    def __init__(self, head: nn.Sequential):
        super().__init__()
        self.head = head

    @property
    def model(self) -> nn.Sequential:  # type: ignore[override]
        return self.head

    def forward(self, x: torch.Tensor, ids: list[int]) -> list[torch.Tensor]:
        return FeatureTaps.features(self, x, ids)
