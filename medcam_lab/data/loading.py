"""Torch datasets over prepared directories, and the loader that serves them whole batches at a time.

- :class:`PairedDataset`: image–EHR pairs of one split of a :class:`~medcam_lab.data.cohort.Cohort`.
- :class:`ImageLabelDataset`: image-only items of any uint8 image cache with a label matrix (a cohort, or a
  ``medcam-lab prepare-images`` directory, :mod:`medcam_lab.data.prepared_images`).
- :func:`make_loader`: a seeded ``DataLoader`` that fetches each batch with one ``__getitems__`` call (one
  fancy-index copy out of the memory-mapped cache), and under data parallelism this rank's slice of every
  global batch (:class:`RankSliceBatchSampler`).

Samples are dicts with the keys of the dataset contract (:mod:`medcam_lab.datasets.base`): ``image``,
``labels``, ``index`` (and ``ehr``, ``lengths`` for pairs).
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

import numpy as np
import pandas as pd
import torch

from medcam_lab.data.cohort import Cohort

__all__ = ["PairedDataset", "ImageLabelDataset", "RankSliceBatchSampler", "make_loader"]


class PairedDataset(torch.utils.data.Dataset):
    """Image–EHR pairs of one split.

    A batch: image (B,S,S) uint8, ehr (B,T,76), lengths (B,), labels (B,L), index (B,).
    """

    def __init__(self, cohort: Cohort, split: str) -> None:
        self.cohort = cohort
        self.indices = cohort.split_indices(split)
        self.pathologies = cohort.pathologies
        self.meta = cohort.pairs.iloc[self.indices].reset_index(drop=True)
        self.labels = cohort.labels[self.indices]
        lengths = cohort.lengths[self.indices]
        self.t_max = int(lengths.max())

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        rows = self.indices[np.asarray(positions)]
        order = np.argsort(rows)  # memmaps read fastest in ascending order
        inverse = np.argsort(order)
        images = np.asarray(self.cohort.images[rows[order]])[inverse]
        return {
            "image": torch.from_numpy(images),
            "ehr": torch.from_numpy(self.cohort.ehr[rows, : self.t_max]),
            "lengths": torch.from_numpy(self.cohort.lengths[rows]),
            "labels": torch.from_numpy(self.labels[np.asarray(positions)]),
            "index": torch.from_numpy(rows),
        }

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


class ImageLabelDataset(torch.utils.data.Dataset):
    """Image-only items from any uint8 image cache with a label matrix (NaN = unknown).

    A batch: image (B,S,S) uint8, labels (B,L) float32, index (B,).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, meta: pd.DataFrame, pathologies: tuple[str, ...],
                 indices: np.ndarray) -> None:
        if len(images) != len(labels) or len(labels) != len(meta):
            raise ValueError("images, labels and meta must be row-aligned")
        self.images = images
        self.indices = np.asarray(indices)
        self.pathologies = tuple(pathologies)
        self.labels = labels[self.indices].astype(np.float32)
        self.meta = meta.iloc[self.indices].reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        rows = self.indices[np.asarray(positions)]
        order = np.argsort(rows)
        images = np.asarray(self.images[rows[order]])[np.argsort(order)]
        return {
            "image": torch.from_numpy(images),
            "labels": torch.from_numpy(self.labels[np.asarray(positions)]),
            "index": torch.from_numpy(rows),
        }

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


def _identity_collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


class RankSliceBatchSampler(torch.utils.data.Sampler):
    """This rank's equal share of every global batch drawn by ``global_batches``.

    Every rank iterates the same seeded global batches of ``world_size × batch_size`` indices (incomplete
    ones dropped) and keeps the slice ``[rank·batch_size, (rank + 1)·batch_size)``, so the ranks' batches
    concatenated in rank order are exactly the batches one process would draw with the global batch size.
    """

    def __init__(self, global_batches: torch.utils.data.BatchSampler, rank: int, world_size: int) -> None:
        if not global_batches.drop_last:
            raise ValueError("data-parallel batches must drop the last incomplete global batch (equal ranks)")
        if global_batches.batch_size % world_size:
            raise ValueError(f"global batch {global_batches.batch_size} not divisible by world size {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        self.global_batches = global_batches
        self.rank = rank
        self.per_rank = global_batches.batch_size // world_size

    def __len__(self) -> int:
        return len(self.global_batches)

    def __iter__(self):
        lo, hi = self.rank * self.per_rank, (self.rank + 1) * self.per_rank
        for batch in self.global_batches:
            yield batch[lo:hi]


def make_loader(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool, seed: int,
                num_workers: int = 0, drop_last: bool = False, pin_memory: bool = False,
                rank: int = 0, world_size: int = 1) -> torch.utils.data.DataLoader:
    """A DataLoader that fetches whole batches through ``__getitems__`` (seeded shuffling).

    With ``world_size > 1`` it serves this rank's slice of each global batch of ``batch_size × world_size``
    (see :class:`RankSliceBatchSampler`; incomplete global batches are always dropped), drawn with the same
    seeded generator as the single-process loader with that global batch size.
    """
    generator = torch.Generator().manual_seed(seed)
    common: dict[str, Any] = dict(generator=generator, num_workers=num_workers, collate_fn=_identity_collate,
                                  pin_memory=pin_memory, persistent_workers=num_workers > 0)
    if world_size == 1:
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                           **common)
    if not isinstance(dataset, Sized):
        raise TypeError(f"data-parallel loading needs a dataset with a length, got {type(dataset).__name__}")
    sampler = (torch.utils.data.RandomSampler(dataset, generator=generator) if shuffle
               else torch.utils.data.SequentialSampler(dataset))
    global_batches = torch.utils.data.BatchSampler(sampler, batch_size * world_size, drop_last=True)
    return torch.utils.data.DataLoader(dataset, batch_sampler=RankSliceBatchSampler(global_batches, rank, world_size),
                                       **common)
