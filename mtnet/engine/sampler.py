"""The training sampler: one seeded permutation per epoch, sharded across processes, resumable mid-epoch."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch; process ``rank`` of ``world_size`` takes every ``world_size``-th index
    (``DistributedSampler``'s layout, padded by wrapping so every process gets the same count), then skips
    its first ``skip`` indices (mid-epoch resume). With one process this is the plain permutation[skip:]."""

    def __init__(self, size: int, seed: int, epoch: int, skip: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.size, self.seed, self.epoch, self.skip = size, seed, epoch, skip
        self.rank, self.world_size = rank, world_size

    @staticmethod
    def shard_size(size: int, world_size: int) -> int:
        """Indices each process sees per epoch (the permutation is padded up to a multiple of the world)."""
        return math.ceil(size / world_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        if self.world_size > 1:
            total = self.shard_size(self.size, self.world_size) * self.world_size
            order = (order * math.ceil(total / max(1, self.size)))[:total][self.rank :: self.world_size]
        return iter(order[self.skip :])

    def __len__(self) -> int:
        return max(0, self.shard_size(self.size, self.world_size) - self.skip)
