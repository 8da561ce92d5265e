"""Which samples go into each micro-batch, as a pure function of (seed, epoch, step).

Every rank computes the same shuffled order and takes its own slice, so a DDP run sees
exactly the global batches a single-process run would, and a resumed run sees exactly the
batches it would have seen had it never stopped. No DataLoader: the built-in and file data
sets fit in memory and indexing a tensor is faster than collating samples.
"""

from __future__ import annotations

import torch

from engine.preflight import check_global_batch


class BatchPlan:
    def __init__(
        self, n: int, batch_size: int, grad_accum: int, seed: int, world_size: int = 1, rank: int = 0
    ):
        self.n, self.batch_size, self.grad_accum = n, batch_size, grad_accum
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.global_batch = batch_size * grad_accum * world_size
        check_global_batch(n, batch_size, grad_accum, world_size)
        self.steps_per_epoch = n // self.global_batch  # the remainder is dropped; the next epoch reshuffles
        self._epoch, self._perm = -1, None

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def micro_batches(self, step: int) -> list[torch.Tensor]:
        """Index tensors of this rank's micro-batches for optimizer step `step` (0-based)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        base = i * self.global_batch
        out = []
        for a in range(self.grad_accum):
            start = base + (a * self.world_size + self.rank) * self.batch_size
            out.append(self._perm[start : start + self.batch_size])
        return out
