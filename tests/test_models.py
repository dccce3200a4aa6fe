"""Tests for medcam_lab.models: encoders, heads, aligner, training modes and checkpoints."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from medcam_lab.losses import MedCAMLoss
from medcam_lab.models import (
    BACKBONE_MODES,
    CheckpointKeyError,
    EHREncoder,
    ImageEncoderSpec,
    MedCAMAligner,
    ProjectionHead,
    backbone_param_groups,
    backbone_state_dict,
    build_image_encoder,
    get_image_encoder_spec,
    list_image_encoders,
    load_backbone_weights,
    register_image_encoder,
    save_state_dict_atomic,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- image encoders


def test_registry_lists_builtin_encoders() -> None:
    assert {"resnet50", "resnet18", "resnet_small"} <= set(list_image_encoders())
    spec = get_image_encoder_spec("resnet_small")
    assert (spec.num_features, spec.input_size, spec.mean, spec.std) == (128, 64, (0.5,) * 3, (0.25,) * 3)
    assert get_image_encoder_spec("resnet50").num_features == 2048
    with pytest.raises(ValueError, match="unknown"):
        build_image_encoder("no_such_encoder")


def test_register_rejects_duplicates_unless_overwrite(monkeypatch: pytest.MonkeyPatch) -> None:
    from medcam_lab.models import image_encoders

    monkeypatch.setattr(image_encoders, "_REGISTRY", dict(image_encoders._REGISTRY))  # keep the global clean
    spec = ImageEncoderSpec("test_tiny", lambda: nn.Identity(), 3, 8, (0.5,) * 3, (0.2,) * 3)
    register_image_encoder(spec, overwrite=True)
    with pytest.raises(ValueError, match="already"):
        register_image_encoder(spec)
    assert "test_tiny" in list_image_encoders()


@pytest.mark.parametrize("name", ["resnet_small", "resnet18", "resnet50"])
def test_image_encoder_forward(name: str) -> None:
    enc = build_image_encoder(name).eval()
    size = 64 if name == "resnet_small" else 32  # tiny inputs keep CPU tests fast
    with torch.no_grad():
        feats = enc(torch.randn(2, 3, size, size))
    assert feats.shape == (2, enc.num_features) and enc.num_features == enc.spec.num_features
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert isinstance(enc.fc, nn.Identity)
    assert not any(k.startswith("fc.") for k in enc.state_dict())


def test_resnet_small_is_torchvision_shaped() -> None:
    enc = build_image_encoder("resnet_small")
    assert isinstance(enc, torchvision.models.ResNet)
    names = [n for n, _ in enc.named_children()]
    layers = ["layer1", "layer2", "layer3", "layer4"]
    assert names == ["conv1", "bn1", "relu", "maxpool", *layers, "avgpool", "fc"]
    assert [len(getattr(enc, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    assert [getattr(enc, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [16, 32, 64, 128]


def test_build_with_local_weights(tmp_path: Path) -> None:
    src = build_image_encoder("resnet_small")
    path = save_state_dict_atomic(backbone_state_dict(src), tmp_path / "w.pth")
    dst = build_image_encoder("resnet_small", weights=path)
    for key, value in src.state_dict().items():
        assert torch.equal(value, dst.state_dict()[key]), key


# --------------------------------------------------------------------------- EHR encoder


def test_ehr_encoder_shapes_padding_and_last() -> None:
    enc = EHREncoder(input_dim=5, hidden_dim=8, num_layers=2, dropout=0.3).eval()
    lengths = torch.tensor([4, 1, 6, 3])
    x = torch.randn(4, 6, 5) * (torch.arange(6)[None, :, None] < lengths[:, None, None])
    steps, last = enc(x, lengths)
    assert steps.shape == (4, 6, 8) and last.shape == (4, 8) and steps.dtype == torch.float32
    assert torch.isfinite(steps).all() and torch.isfinite(last).all()
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(steps[b, n:] == 0)
        torch.testing.assert_close(last[b], steps[b, n - 1])


def test_ehr_encoder_is_padding_invariant() -> None:
    enc = EHREncoder(input_dim=5, hidden_dim=8).eval()
    seq = torch.randn(1, 4, 5)
    other = torch.randn(1, 9, 5)
    short = torch.cat([torch.cat([seq, torch.zeros(1, 1, 5)], 1), other[:, :5]])  # T = 5
    long = torch.cat([torch.cat([seq, torch.zeros(1, 5, 5)], 1), other])  # T = 9
    s5, l5 = enc(short, torch.tensor([4, 5]))
    s9, l9 = enc(long, torch.tensor([4, 9]))
    torch.testing.assert_close(s5[0], s9[0, :5])
    torch.testing.assert_close(l5[0], l9[0])
    assert torch.all(s9[0, 4:] == 0)


def test_ehr_encoder_batch_of_one_zero_length_and_bad_lengths() -> None:
    enc = EHREncoder(input_dim=3, hidden_dim=4).eval()
    steps, last = enc(torch.randn(1, 3, 3), torch.tensor([2]))
    assert steps.shape == (1, 3, 4) and last.shape == (1, 4)
    steps, last = enc(torch.randn(2, 3, 3), torch.tensor([0, 3]))
    assert torch.all(steps[0] == 0) and torch.all(last[0] == 0) and torch.any(last[1] != 0)
    for bad in (torch.tensor([4, 1]), torch.tensor([-1, 1]), torch.tensor([1])):
        with pytest.raises(ValueError):
            enc(torch.randn(2, 3, 3), bad)


def test_ehr_encoder_layout_and_init() -> None:
    enc = EHREncoder()  # MedFuse: 76 → 2 × LSTM(256), dropout 0.3
    assert len(enc.layers) == 2
    assert all(lstm.num_layers == 1 and not lstm.bidirectional for lstm in enc.layers)
    assert enc.layers[0].input_size == 76 and enc.layers[1].input_size == 256 and enc.output_dim == 256
    assert enc.dropout.p == 0.3
    for name, p in enc.layers.named_parameters():
        if "bias" in name:
            assert torch.all(p == 0)
    w_hh = enc.layers[0].weight_hh_l0  # (4H, H), semi-orthogonal: W^T W = I
    torch.testing.assert_close(w_hh.T @ w_hh, torch.eye(256), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- heads


def test_projection_head_variants() -> None:
    lin = ProjectionHead(10, 4)
    mlp = ProjectionHead(10, 4, hidden_dim=6)
    assert isinstance(lin.net, nn.Linear)
    assert [type(m) for m in mlp.net] == [nn.Linear, nn.ReLU, nn.Linear]
    for head in (lin, mlp):
        assert head(torch.randn(3, 10)).shape == (3, 4)
        assert head(torch.randn(2, 5, 10)).shape == (2, 5, 4)


# --------------------------------------------------------------------------- aligner


def _aligner(**kw) -> MedCAMAligner:
    return MedCAMAligner(
        build_image_encoder("resnet_small"), EHREncoder(input_dim=6, hidden_dim=16), proj_dim=12, **kw
    )


def _inputs(B: int = 4, T: int = 5):
    lengths = torch.tensor([5, 2, 1, 3, 4, 5][:B])
    ehr = torch.randn(B, T, 6) * (torch.arange(T)[None, :, None] < lengths[:, None, None])
    return torch.randn(B, 3, 64, 64), ehr, lengths


def test_aligner_outputs_and_attention() -> None:
    model = _aligner()
    images, ehr, lengths = _inputs()
    out = model(images, ehr, lengths)
    B, T = ehr.shape[:2]
    assert out["z_cxr"].shape == out["z_ehr"].shape == (B, 12)
    assert out["z_ehr_steps"].shape == (B, T, 12)
    assert out["step_mask"].dtype == torch.bool
    assert torch.equal(out["step_mask"], torch.arange(T)[None, :] < lengths[:, None])
    for key in ("z_cxr", "z_ehr", "z_ehr_steps", "attention"):
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all(), key
    att, mask = out["attention"], out["step_mask"]
    torch.testing.assert_close(att.sum(1), torch.ones(B))
    assert torch.all(att[~mask] == 0) and torch.all(att[mask] > 0)
    assert torch.all(out["z_ehr_steps"][~mask] == 0)


@pytest.mark.parametrize("hidden", [None, 32])
def test_every_trainable_parameter_gets_gradient(hidden) -> None:
    model = _aligner(image_proj_hidden=hidden, ehr_proj_hidden=hidden).train()
    loss_fn = MedCAMLoss(k=2, temperature=0.1, learnable_temperature=True)
    loss = loss_fn(**model(*_inputs()))["loss"]
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params.append(("logit_scale", loss_fn.logit_scale))
    assert len(params) == len(list(model.parameters())) + 1
    bad = [n for n, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    bad += [n for n, p in params if p.grad is not None and p.grad.abs().sum() == 0]
    assert bad == []


def test_frozen_and_last_block_modes() -> None:
    model = _aligner()
    groups = backbone_param_groups(model, "frozen", lr=1e-3)
    assert [g["name"] for g in groups] == ["heads_ehr"]
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    model.train()
    bns = [m for m in model.image_encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not any(bn.training for bn in bns) and model.ehr_encoder.training
    running = model.image_encoder.bn1.running_mean.clone()
    loss = MedCAMLoss(k=2)(**model(*_inputs()))["loss"]
    loss.backward()
    assert torch.equal(running, model.image_encoder.bn1.running_mean)  # BN statistics do not drift
    assert all(p.grad is None for p in model.image_encoder.parameters())

    groups = backbone_param_groups(model, "last_block", lr=1e-3, backbone_lr_mult=0.1)
    trainable = {n for n, p in model.image_encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("layer4.") for n in trainable)
    assert trainable == {n for n, _ in model.image_encoder.named_parameters() if n.startswith("layer4.")}
    assert [(g["name"], g["lr"]) for g in groups] == [("heads_ehr", 1e-3), ("backbone", pytest.approx(1e-4))]
    model.train()
    assert not model.image_encoder.bn1.training and model.image_encoder.layer4[0].bn1.training


@pytest.mark.parametrize("mode,bb_lr", [("adapt", 1e-4), ("full", 1e-3)])
def test_adapt_and_full_param_groups_cover_all_params_once(mode: str, bb_lr: float) -> None:
    model = _aligner()
    backbone_param_groups(model, "frozen", lr=1e-3)  # switching back must re-enable the backbone
    extra = nn.Parameter(torch.zeros(()))
    groups = backbone_param_groups(model, mode, lr=1e-3, extra_params=[extra])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters())) + 1
    assert all(p.requires_grad for p in model.parameters())
    assert groups[1]["lr"] == pytest.approx(bb_lr)
    torch.optim.AdamW(groups)  # accepted by a real optimizer
    model.train()
    assert model.image_encoder.bn1.training


def test_param_groups_reject_bad_mode() -> None:
    assert BACKBONE_MODES == ("adapt", "frozen", "last_block", "full")
    with pytest.raises(ValueError):
        backbone_param_groups(_aligner(), "lora", lr=1e-3)
    with pytest.raises(ValueError):
        backbone_param_groups(_aligner(), "adapt", lr=0.0)


# --------------------------------------------------------------------------- checkpoints


def test_backbone_state_dict_loads_into_fresh_torchvision_resnet50(tmp_path: Path) -> None:
    enc = build_image_encoder("resnet50")
    path = save_state_dict_atomic(backbone_state_dict(enc), tmp_path / "adapted" / "backbone.pth")
    fresh = torchvision.models.resnet50(weights=None)
    result = fresh.load_state_dict(torch.load(path, weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    torch.testing.assert_close(fresh.conv1.weight, enc.conv1.weight)
    # and the other way round: a full torchvision state_dict (with fc) loads into the headless encoder
    full = tmp_path / "tv.pth"
    torch.save(fresh.state_dict(), full)
    report = load_backbone_weights(build_image_encoder("resnet50"), full)
    assert report.ignored_keys == ["fc.bias", "fc.weight"]


@pytest.fixture()
def small_sd() -> dict:
    return backbone_state_dict(build_image_encoder("resnet_small"))


def test_load_ddp_prefixed_and_wrapped_checkpoints(tmp_path: Path, small_sd: dict) -> None:
    variants = {
        "ddp": {f"module.{k}": v for k, v in small_sd.items()},
        "wrapped": {"state_dict": small_sd, "epoch": 3},
        "model_ddp_backbone": {"model": {f"module.backbone.{k}": v for k, v in small_sd.items()}},
    }
    for name, obj in variants.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        model = build_image_encoder("resnet_small")
        report = load_backbone_weights(model, path)
        assert report.missing_keys == [] and report.ignored_keys == []
        assert torch.equal(model.conv1.weight, small_sd["conv1.weight"]), name


def test_select_prefix_for_full_training_checkpoints(tmp_path: Path, small_sd: dict) -> None:
    state = {f"module.backbone.{k}": v for k, v in small_sd.items()}
    state["module.projector.0.weight"] = torch.zeros(4, 128)
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": state, "epoch": 1}, path)
    with pytest.raises(CheckpointKeyError):
        load_backbone_weights(build_image_encoder("resnet_small"), path)
    load_backbone_weights(build_image_encoder("resnet_small"), path, select_prefix="backbone.")


def test_unexpected_and_missing_keys_raise(tmp_path: Path, small_sd: dict) -> None:
    extra = dict(small_sd, **{"projector.0.weight": torch.zeros(2, 2)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(KeyError, match="projector.0.weight") as err:
        load_backbone_weights(build_image_encoder("resnet_small"), tmp_path / "extra.pth")
    assert "extra.pth" in str(err.value) and isinstance(err.value, ValueError)

    missing = {k: v for k, v in small_sd.items() if k != "layer2.0.conv1.weight"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(KeyError, match="layer2.0.conv1.weight"):
        load_backbone_weights(build_image_encoder("resnet_small"), tmp_path / "missing.pth")


def test_shape_mismatch_raises(tmp_path: Path, small_sd: dict) -> None:
    bad = dict(small_sd)
    bad["conv1.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(bad, tmp_path / "shape.pth")
    model = build_image_encoder("resnet_small")
    before = model.conv1.weight.clone()
    with pytest.raises(ValueError, match="conv1.weight"):
        load_backbone_weights(model, tmp_path / "shape.pth")
    assert torch.equal(before, model.conv1.weight)  # nothing was copied


def test_head_shape_mismatch_is_ignored(tmp_path: Path) -> None:
    src = torchvision.models.resnet18(weights=None)  # 1000-class fc
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    dst = torchvision.models.resnet18(weights=None, num_classes=14)
    report = load_backbone_weights(dst, tmp_path / "r18.pth")
    assert report.missing_keys == ["fc.bias", "fc.weight"]
    assert torch.equal(dst.layer1[0].conv1.weight, src.layer1[0].conv1.weight)


_MARKER = {"path": ""}


def _pwned(path: str) -> None:
    Path(path).write_text("code ran")


class _Evil:
    """A pickled object that runs code when unpickled without ``weights_only``."""

    def __reduce__(self):
        return (_pwned, (_MARKER["path"],))


def test_weights_only_refuses_custom_objects(tmp_path: Path, small_sd: dict) -> None:
    marker = tmp_path / "marker.txt"
    _MARKER["path"] = str(marker)
    path = tmp_path / "evil.pth"
    torch.save(dict(small_sd, evil=_Evil()), path)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load_backbone_weights(build_image_encoder("resnet_small"), path)
    assert not marker.exists()


def test_missing_file_and_non_tensor_entries(tmp_path: Path, small_sd: dict) -> None:
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(build_image_encoder("resnet_small"), tmp_path / "nope.pth")
    torch.save(dict(small_sd, note="hello"), tmp_path / "str.pth")
    with pytest.raises(ValueError, match="non-tensor"):
        load_backbone_weights(build_image_encoder("resnet_small"), tmp_path / "str.pth")


def test_save_state_dict_atomic_overwrites_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    save_state_dict_atomic({"a": torch.ones(2)}, path)
    save_state_dict_atomic({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(3))
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_the_spec_and_width_of_a_built_encoder_and_a_clear_error_for_a_bare_module() -> None:
    from medcam_lab.models.image_encoders import build_image_encoder, encoder_spec, encoder_width

    encoder = build_image_encoder("resnet_small")
    assert encoder_spec(encoder) is get_image_encoder_spec("resnet_small")
    assert encoder_width(encoder) == get_image_encoder_spec("resnet_small").num_features
    with pytest.raises(ValueError, match="build_image_encoder"):
        encoder_spec(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="build_image_encoder"):
        encoder_width(nn.Linear(2, 2))
