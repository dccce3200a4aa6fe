"""Checkpoint round trips for every layout of spec/cxr.md Part B, built here from random weights, and the
failure cases (unexpected/missing keys, undocumented extras, wrong layout, pickles needing code execution)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medcam_lab.models import CheckpointKeyError, build_image_encoder, get_image_encoder_spec, list_image_encoders
from medcam_lab.models.checkpoints import CHECKPOINT_LAYOUTS, CheckpointReadError, load_backbone_weights


def _random_state(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_image_encoder(name)
    return {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()}


def _assert_loaded(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


@pytest.fixture(scope="module")
def small() -> dict[str, torch.Tensor]:
    return _random_state("resnet_small")


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_registry_entries_carry_preprocessing():
    names = set(list_image_encoders())
    assert {"resnet50", "barlowtwins_cxr", "eva_x_tiny", "eva_x_small", "convirt_resnet50", "gloria_resnet50",
            "medclip_resnet50", "mgca_resnet50"} <= names
    for name in names:
        spec = get_image_encoder_spec(name)
        assert len(spec.mean) == 3 and len(spec.std) == 3 and spec.input_size > 0
        assert spec.checkpoint_layout in CHECKPOINT_LAYOUTS
    assert get_image_encoder_spec("eva_x_small").mean[0] == pytest.approx(0.49185)
    assert get_image_encoder_spec("barlowtwins_cxr").std == (0.229, 0.224, 0.225)


def test_barlowtwins_plain_resnet50_file(tmp_path):
    """resnet50.pth / best_model.pth: plain torchvision keys, no fc, through the registry entry."""
    state = _random_state("barlowtwins_cxr")
    model = build_image_encoder("barlowtwins_cxr", weights=_save(state, tmp_path / "resnet50.pth"))
    _assert_loaded(model, state)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2048)


def test_barlowtwins_ddp_checkpoint(tmp_path, small):
    ddp = {f"module.backbone.{k}": v for k, v in small.items()}
    ddp |= {"module.projector.0.weight": torch.randn(8, 128), "module.projector.1.running_mean": torch.zeros(8),
            "module.bn.running_mean": torch.zeros(8), "module.bn.running_var": torch.ones(8)}
    path = _save({"epoch": 600, "model": ddp, "optimizer": {"state": {}, "param_groups": []}}, tmp_path / "c.pth")
    model = build_image_encoder("resnet_small")
    report = load_backbone_weights(model, path, layout="barlowtwins_cxr")
    _assert_loaded(model, small)
    assert "projector.0.weight" in report.ignored_keys and "bn.running_mean" in report.ignored_keys
    ddp["module.extra.weight"] = torch.zeros(1)
    _save({"model": ddp}, path)
    with pytest.raises(CheckpointKeyError, match="extra.weight"):
        load_backbone_weights(build_image_encoder("resnet_small"), path, layout="barlowtwins_cxr")


def test_barlowtwins_mmdet_detector(tmp_path, small):
    sd = {f"backbone.{k}": v for k, v in small.items()}
    sd |= {"neck.lateral_convs.0.conv.weight": torch.randn(2, 2), "rpn_head.rpn_cls.weight": torch.randn(3),
           "roi_head.bbox_head.fc_cls.weight": torch.randn(4)}
    path = _save({"meta": {"mmdet_version": "2.28.2"}, "state_dict": sd}, tmp_path / "det.pth")
    model = build_image_encoder("resnet_small")
    load_backbone_weights(model, path, layout="barlowtwins_cxr")
    _assert_loaded(model, small)


def _to_eva_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Eva names → the original EVA-02/EVA-X MIM names (inverse of the loader's renames, written here)."""
    out = {}
    for key, value in state.items():
        key = key.replace("mlp.fc1.", "mlp.w12.").replace("mlp.fc2.", "mlp.w3.")
        if key.startswith("fc_norm."):
            key = key[len("fc_"):]  # MIM checkpoints keep the final norm as `norm`
        out[key] = value
    return out


@pytest.mark.parametrize("name", ["eva_x_tiny", "eva_x_small"])
def test_eva_x_mim_checkpoint(tmp_path, name):
    pytest.importorskip("timm")
    state = _random_state(name)
    original = _to_eva_original(state)
    assert any(".w12." in k for k in original) and "norm.weight" in original
    original |= {"mask_token": torch.zeros(1, 1, state["cls_token"].shape[-1]),
                 "lm_head.weight": torch.randn(8, 4), "lm_head.bias": torch.zeros(8),
                 "rope.freqs_cos": torch.randn(196, 64)}
    path = _save({"model": original, "epoch": 599}, tmp_path / f"{name}_mim.pt")
    model = build_image_encoder(name, weights=path)
    _assert_loaded(model, state)
    out = model.eval()(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, get_image_encoder_spec(name).num_features)


def test_eva_x_finetuned_head_dropped_and_fusion_mismatch(tmp_path):
    pytest.importorskip("timm")
    state = _random_state("eva_x_tiny")
    finetuned = dict(state) | {"head.weight": torch.randn(14, 192), "head.bias": torch.zeros(14)}
    path = _save({"model": finetuned}, tmp_path / "eva_x_tiny_cxr14_ft.pth")
    _assert_loaded(build_image_encoder("eva_x_tiny", weights=path), state)
    split_qkv = {k.replace("attn.qkv.", "attn.q_proj."): v for k, v in state.items()}
    _save({"model": split_qkv}, path)
    with pytest.raises(CheckpointKeyError, match="q_proj"):
        build_image_encoder("eva_x_tiny", weights=path)


@pytest.mark.parametrize("layout,prefix,wrap", [
    ("convirt", "visual.model.", None),
    ("gloria", "gloria.img_encoder.model.", "state_dict"),
    ("medclip", "vision_model.model.", None),
    ("mgca", "img_encoder_q.model.", None),
])
def test_image_text_exports(tmp_path, small, layout, prefix, wrap):
    sd = {f"{prefix}{k}": v for k, v in small.items()}
    sd |= {f"{prefix}fc.weight": torch.randn(1000, 128), "text_model.embeddings.position_ids": torch.arange(5),
           "logit_scale": torch.tensor(2.0)}
    path = _save({wrap: sd} if wrap else sd, tmp_path / f"{layout}.pth")
    model = build_image_encoder("resnet_small")
    report = load_backbone_weights(model, path, layout=layout)
    _assert_loaded(model, small)
    assert "text_model.embeddings.position_ids" in report.ignored_keys
    with pytest.raises(ValueError, match="no key starts with"):
        load_backbone_weights(build_image_encoder("resnet_small"), path,
                              layout="medclip" if layout != "medclip" else "convirt")


def test_safetensors_file(tmp_path, small):
    from safetensors.torch import save_file

    path = tmp_path / "encoder.safetensors"
    save_file(small, str(path))
    model = build_image_encoder("resnet_small", weights=path)
    _assert_loaded(model, small)


def test_failures_are_loud(tmp_path, small):
    extra = dict(small) | {"layer5.weight": torch.zeros(1)}
    with pytest.raises(CheckpointKeyError, match="layer5.weight"):
        build_image_encoder("resnet_small", weights=_save(extra, tmp_path / "extra.pth"))
    missing = {k: v for k, v in small.items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointKeyError, match="missing keys"):
        build_image_encoder("resnet_small", weights=_save(missing, tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="unknown checkpoint layout"):
        load_backbone_weights(build_image_encoder("resnet_small"), tmp_path / "extra.pth", layout="nope")


class _Custom:
    def __init__(self, state):
        self.state = state


def test_pickle_needing_code_execution_is_refused(tmp_path, small):
    path = tmp_path / "full_model.pth"
    torch.save({"model": _Custom(small)}, path)
    with pytest.raises(pickle.UnpicklingError, match="code execution"):
        build_image_encoder("resnet_small", weights=path)


def test_a_damaged_file_is_named_and_called_corrupt_or_truncated(tmp_path, small):
    whole = _save(small, tmp_path / "whole.pth").read_bytes()
    legacy = tmp_path / "legacy.pth"
    torch.save(small, legacy, _use_new_zipfile_serialization=False)
    cases = {"truncated.pth": whole[: len(whole) // 2], "legacy_truncated.pth": legacy.read_bytes()[:-100],
             "random.pth": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
             "pickle_cut.pth": pickle.dumps({"a": 1.0})[:-3]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointReadError, match=rf"{name}: not a readable weights file: corrupt or truncated"):
            build_image_encoder("resnet_small", weights=tmp_path / name)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointReadError, match="empty.pth: .*empty; 0 bytes"):
        build_image_encoder("resnet_small", weights=tmp_path / "empty.pth")


def test_a_plain_pickle_of_objects_is_called_unsafe_not_corrupt(tmp_path, small):
    path = tmp_path / "pickled_object.pkl"
    path.write_bytes(pickle.dumps({"model": _Custom({"w": 1})}, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match="pickled_object.pkl: .*valid pickle.*code execution"):
        build_image_encoder("resnet_small", weights=path)


def test_a_wrong_encoder_name_suggests_the_one_whose_keys_match(tmp_path, small):
    path = _save(small, tmp_path / "small.pth")
    with pytest.raises(CheckpointKeyError, match=r"small.pth: .*match the image encoder\(s\) \['resnet_small'\]: "
                                                 r"pass --encoder resnet_small"):
        build_image_encoder("resnet18", weights=path)
