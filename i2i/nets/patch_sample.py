"""CUT's patch sampler and projection head ``PatchSampleF`` (``--netF mlp_sample``; Park et al.,
"Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020).

For each tapped generator feature map it picks the same random spatial positions in every image of the
batch, runs their feature vectors through a two-layer MLP per layer and L2-normalises them, as
``models/networks.py:PatchSampleF`` of taesungp/contrastive-unpaired-translation does. The authors build
the MLPs lazily on the first forward pass; here they are built at construction from the feature maps'
channel counts (:meth:`i2i.nets.taps.FeatureTaps.feature_channels`), so parameter shapes are fixed for
checkpoints and meta-device builds. The state-dict keys are the authors' (``mlp_0.0.weight``,
``mlp_0.0.bias``, ``mlp_0.2.weight``, ... ``mlp_4.2.bias``), so their ``latest_net_F.pth`` files load.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .registry import register


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-7) -> torch.Tensor:
    """``x / (||x||_2 + eps)`` along ``dim``: the authors' ``Normalize(2)`` (which always uses dim 1)."""
    # the authors' value, x / (||x|| + eps); vector_norm's gradient at a zero vector is 0 where
    # pow(0.5)'s is infinite (a patch whose MLP output is all zero, after a dead ReLU, gave NaN)
    return x.div(torch.linalg.vector_norm(x, dim=dim, keepdim=True) + eps)


class PatchSampleF(nn.Module):
    """Sample patches of feature maps and project them: one ``Linear(c, nc) -> ReLU -> Linear(nc, nc)``
    per input layer (``mlp_0``, ``mlp_1``, ...), for ``in_channels = [c_0, c_1, ...]``."""

    def __init__(self, in_channels: Sequence[int], nc: int = 256):
        super().__init__()
        in_channels = list(in_channels)
        for c in [*in_channels, nc]:
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"channel counts must be positive integers, not {c!r}")
        if not in_channels:
            raise ValueError("PatchSampleF needs at least one layer's channel count")
        self.in_channels = in_channels
        self.nc = nc
        for i, c in enumerate(in_channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, feats: Sequence[torch.Tensor], num_patches: int = 256,
                patch_ids: Sequence[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], list]:
        """Project ``feats`` (one ``[B, C_l, H_l, W_l]`` map per layer) at sampled positions.

        Returns ``(projected, ids)``. With ``num_patches > 0``: ``projected[l]`` is
        ``[B * P_l, nc]``, rows image-major (image 0's P_l patches first), each of unit L2 norm, where
        ``P_l = min(num_patches, H_l * W_l)``; ``ids[l]`` are the P_l flat positions (``h * W_l + w``),
        drawn with ``torch.randperm`` on the feature's device, shared by all images of the batch.
        Pass the ``ids`` of the key features as ``patch_ids`` for the query features, so both sample
        the same positions (then ``num_patches`` only needs to be positive). With ``num_patches=0``,
        every position is kept and ``projected[l]`` comes back as a ``[B, nc, H_l, W_l]`` map, ``ids[l]``
        as ``[]``; as in the authors' code it is then normalised over the positions (their
        ``Normalize`` sums over dim 1 of a ``[B, H*W, nc]`` tensor), not over the channels.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f"got {len(feats)} feature maps for a head built for {len(self.in_channels)}")
        if patch_ids is not None and num_patches > 0 and len(patch_ids) != len(feats):
            raise ValueError(f"got {len(patch_ids)} patch id tensors for {len(feats)} feature maps")
        return_ids, return_feats = [], []
        for feat_id, feat in enumerate(feats):
            B, H, W = feat.shape[0], feat.shape[2], feat.shape[3]
            feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)  # [B, H*W, C]
            if num_patches > 0:
                if patch_ids is not None:
                    patch_id = patch_ids[feat_id]
                else:
                    patch_id = torch.randperm(feat_reshape.shape[1], device=feat.device)
                    patch_id = patch_id[: int(min(num_patches, patch_id.shape[0]))]
                x_sample = feat_reshape[:, patch_id, :].flatten(0, 1)  # [B * P, C]
            else:
                x_sample = feat_reshape
                patch_id = []
            x_sample = getattr(self, f"mlp_{feat_id}")(x_sample)
            return_ids.append(patch_id)
            x_sample = l2_normalize(x_sample, dim=1)
            if num_patches == 0:
                x_sample = x_sample.permute(0, 2, 1).reshape([B, x_sample.shape[-1], H, W])
            return_feats.append(x_sample)
        return return_feats, return_ids


@register("mlp_sample", "feature_head")
def mlp_sample(in_channels: Sequence[int], nc: int = 256) -> PatchSampleF:
    """CUT's ``--netF mlp_sample`` head for feature maps of ``in_channels`` channels:
    ``create("mlp_sample", in_channels=G.feature_channels([0, 4, 8, 12, 16]))``."""
    return PatchSampleF(in_channels, nc)
