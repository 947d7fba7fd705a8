"""Image history buffer (Shrivastava et al. 2017), as CycleGAN uses it.

The discriminator sees a mix of the newest fakes and older ones, which damps the oscillation between
generator and discriminator. Until the pool is full every fake goes in and comes straight back;
after that each fake, with probability 0.5, swaps places with a random stored one (the stored one is
returned), and otherwise is returned as it is. Randomness comes from torch's generator, so a resumed
run (which restores it and the pool's contents) continues identically.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch the size of ``images``, mixing in stored fakes once the pool is full."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].to(image.device))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = state["size"]
        self.images = list(state["images"])
