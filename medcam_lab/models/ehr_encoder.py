"""LSTM encoder for the discretised ICU time series (MedFuse's ``LSTM``, baselines.md §1).

Differences from MedFuse, all deliberate: the per-timestep outputs of the top layer are returned (MedCAM's
local loss needs them), ``last`` keeps the batch axis for B = 1 (MedFuse's ``squeeze`` drops it), and
zero-length sequences are allowed (they give zero outputs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["EHREncoder"]


class EHREncoder(nn.Module):
    """Unidirectional stacked LSTM over zero-padded EHR sequences.

    Built as MedFuse builds it: ``num_layers`` *separate* single-layer ``nn.LSTM`` modules applied in
    sequence (``self.layers[i]``), not one ``nn.LSTM(num_layers=...)``. Hence there is no inter-layer
    dropout; as in MedFuse the only dropout is ``nn.Dropout(dropout)`` on the sequence feature ``last``
    (the per-step outputs are not dropped out, so ``last == steps[b, lengths[b]-1]`` only in eval mode).
    Init: input-hidden weights Xavier-uniform, hidden-hidden weights orthogonal, biases 0.

    Sequences are packed (``pack_padded_sequence(enforce_sorted=False)``), so the outputs of a sequence do
    not depend on how much padding follows it.

    Args:
        input_dim: features per timestep ``F`` (76 for the MIMIC-IV discretiser).
        hidden_dim: LSTM width ``H``.
        num_layers: stacked LSTM layers.
        dropout: dropout probability on ``last``.

    Shape:
        - x: (B, T, F) float, zero-padded after each sequence's length.
        - lengths: (B,) long, ``0 ≤ lengths ≤ T``.
        - steps: (B, T, H); exactly 0 at padded positions (``t ≥ lengths[b]``).
        - last: (B, H); the top layer's output at step ``lengths[b] - 1`` (zeros when the length is 0).
    """

    def __init__(
        self, input_dim: int = 76, hidden_dim: int = 256, num_layers: int = 2, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if input_dim < 1 or hidden_dim < 1 or num_layers < 1:
            raise ValueError("input_dim, hidden_dim and num_layers must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            nn.LSTM(input_dim if i == 0 else hidden_dim, hidden_dim, batch_first=True)
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @property
    def output_dim(self) -> int:
        """Width ``H`` of ``steps`` and ``last``."""
        return self.hidden_dim

    def reset_parameters(self) -> None:
        """MedFuse init: Xavier-uniform ``weight_ih``, orthogonal ``weight_hh``, zero biases."""
        for name, param in self.layers.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "bias" in name:
                nn.init.zeros_(param)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a padded batch.

        Args:
            x: zero-padded sequences.
            lengths: number of valid (leading) steps of each sequence.

        Returns:
            ``(steps, last)``: top-layer outputs per step and the sequence feature (after dropout).

        Raises:
            ValueError: on bad shapes or lengths outside ``[0, T]``.

        Shape:
            - x: (B, T, F).
            - lengths: (B,).
            - steps: (B, T, H).
            - last: (B, H).
        """
        if x.dim() != 3 or x.shape[2] != self.input_dim:
            raise ValueError(f"x must be (B, T, {self.input_dim}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        lengths_cpu = torch.as_tensor(lengths).to("cpu", torch.long)
        if lengths_cpu.shape != (B,):
            raise ValueError(f"lengths must be ({B},), got {tuple(lengths_cpu.shape)}")
        if bool((lengths_cpu < 0).any()) or bool((lengths_cpu > T).any()):
            raise ValueError(f"lengths must lie in [0, {T}], got {lengths_cpu.tolist()}")
        # pack_padded_sequence rejects length 0: run such rows over one (zero) step and zero them after.
        packed = pack_padded_sequence(x, lengths_cpu.clamp(min=1), batch_first=True, enforce_sorted=False)
        for lstm in self.layers:  # at least one (checked in __init__): h_n is the top layer's
            packed, (h_n, _) = lstm(packed)
        steps, _ = pad_packed_sequence(packed, batch_first=True, total_length=T)
        last = h_n[-1]  # (B, H), already in the original batch order (enforce_sorted=False unsorts)
        empty_cpu = lengths_cpu == 0  # checked on the host copy: no device synchronisation
        if bool(empty_cpu.any()):
            empty = empty_cpu.to(x.device)
            steps = steps.masked_fill(empty[:, None, None], 0.0)
            last = last.masked_fill(empty[:, None], 0.0)
        return steps, self.dropout(last)
