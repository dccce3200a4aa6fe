"""No hook is left on the model after an attribution, including one that raises half-way."""

from __future__ import annotations

import pytest
import torch

from medcam_lab.explain import count_hooks, grad_cam, integrated_gradients, last_block
from medcam_lab.models import build_image_encoder


class Boom(RuntimeError):
    pass


def test_hooks_removed_after_success_and_after_an_exception():
    encoder = build_image_encoder("resnet_small").eval()
    images = torch.randn(2, 3, 32, 32)
    assert count_hooks(encoder) == 0
    grad_cam(lambda x: encoder(x).sum(1), last_block(encoder), images)
    assert count_hooks(encoder) == 0

    calls = {"n": 0}

    def failing(x):
        calls["n"] += 1
        out = encoder(x)  # the layer hook fires here, then the forward fails
        raise Boom("forward failed after the hooked layer ran")
        return out  # pragma: no cover

    with pytest.raises(Boom):
        grad_cam(failing, last_block(encoder), images)
    assert calls["n"] == 1
    assert count_hooks(encoder) == 0
    with pytest.raises(Boom):
        integrated_gradients(failing, images, n_steps=4)
    assert count_hooks(encoder) == 0
