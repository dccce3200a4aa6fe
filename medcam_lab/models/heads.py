"""Projection heads ``g_cxr`` / ``g_ehr`` into the shared alignment space."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """``Linear`` (default) or ``Linear–ReLU–Linear`` (when ``hidden_dim`` is given) projection.

    No normalisation layer: the losses L2-normalise the outputs, and a BatchNorm would couple the
    per-timestep EHR projections of a batch. Works on any number of leading dimensions.

    Args:
        in_dim: input width.
        out_dim: shared-space width ``d``.
        hidden_dim: hidden width of the 2-layer MLP; ``None`` = a single ``Linear``.

    Shape:
        - x: (*, in_dim).
        - output: (*, out_dim).

    Examples:
        >>> head = ProjectionHead(2048, 256, hidden_dim=512)
    """

    def __init__(self, in_dim: int, out_dim: int = 256, hidden_dim: int | None = None) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or (hidden_dim is not None and hidden_dim < 1):
            raise ValueError(f"dimensions must be >= 1, got {in_dim}, {out_dim}, {hidden_dim}")
        self.in_dim, self.out_dim, self.hidden_dim = in_dim, out_dim, hidden_dim
        if hidden_dim is None:
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Project ``x``.

        Shape:
            - x: (*, in_dim).
            - output: (*, out_dim).
        """
        return self.net(x)
