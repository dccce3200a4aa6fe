"""Config dataclasses: unknown or mistyped parameters fail fast; CLI flags equal the field names."""

import dataclasses

import pytest

from medcam_lab.cli import COMMANDS, build_parser
from medcam_lab.config import AlignConfig, FinetuneConfig, config_from_dict, config_to_dict


def test_unknown_key_is_rejected_with_its_name():
    with pytest.raises(KeyError, match="lamda_global"):
        config_from_dict(AlignConfig, {"lamda_global": 1.0})


def test_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="epochs"):
        config_from_dict(AlignConfig, {"epochs": "ten"})


def test_int_promoted_to_float_and_list_to_tuple():
    cfg = config_from_dict(FinetuneConfig, {"lr_grid": [1, 0.1], "backbone_lr_mult": 1})
    assert cfg.lr_grid == (1.0, 0.1) and isinstance(cfg.backbone_lr_mult, float)


def test_round_trip_through_dict():
    cfg = AlignConfig(k=5, temperature=0.07)
    assert config_from_dict(AlignConfig, config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_flags_equal_config_fields(command):
    _, cls, required, _ = COMMANDS[command]
    parser = build_parser()
    argv = [command]
    for name in required:
        argv += ["--" + name.replace("_", "-"), "x"]
    args = parser.parse_args(argv)
    for name in required:
        assert getattr(args, name) == "x"
    sub = parser._subparsers._group_actions[0].choices[command]
    dests = {a.dest for a in sub._actions} - {"help"}
    assert dests == {f.name for f in dataclasses.fields(cls)}


def test_a_run_reached_through_a_symlinked_folder_finds_its_inputs(tmp_path, monkeypatch):
    """Relative inputs are stored relative to the run's real folder and resolved from it, so a run folder
    linked elsewhere (``runs/`` on another disk) still opens."""
    import os

    from medcam_lab.config import FinetuneConfig
    from medcam_lab.runinfo import read_run_config, write_run_info

    project, disk = tmp_path / "project", tmp_path / "disk"
    (project / "demo_out" / "cohort").mkdir(parents=True)
    (disk / "runs").mkdir(parents=True)
    (project / "runs").symlink_to(disk / "runs", target_is_directory=True)
    monkeypatch.chdir(project)
    cfg = FinetuneConfig(data="demo_out/cohort", out="runs/x/03", weights="")
    write_run_info(cfg.out, "finetune", cfg)
    assert (disk / "runs" / "x" / "03" / "config.json").exists()
    for run in ("runs/x/03", str(disk / "runs" / "x" / "03")):
        loaded = read_run_config(run, FinetuneConfig)
        assert os.path.samefile(loaded.data, project / "demo_out" / "cohort"), run
        assert os.path.samefile(loaded.out, disk / "runs" / "x" / "03")
    monkeypatch.chdir(tmp_path)
    assert os.path.samefile(read_run_config("project/runs/x/03", FinetuneConfig).data, project / "demo_out" / "cohort")


def test_the_runtime_fields_have_one_home():
    """seed / num_workers / device and the GPU switches are declared and described once, in the two bases."""
    from medcam_lab import config
    from medcam_lab.config import AcceleratedConfig, MedModConfig, PretrainConfig, RuntimeConfig, own_fields
    from medcam_lab.config_help import field_descriptions

    runtime = {f.name for f in dataclasses.fields(RuntimeConfig)}
    accelerated = {f.name for f in dataclasses.fields(AcceleratedConfig)} - runtime
    assert runtime == {"seed", "num_workers", "device"} and accelerated == {"precision", "channels_last", "compile"}
    for cls in (PretrainConfig, MedModConfig, AlignConfig, FinetuneConfig):
        assert issubclass(cls, RuntimeConfig)
        assert issubclass(cls, AcceleratedConfig) == (cls in (AlignConfig, FinetuneConfig))
        declared = list(cls.__dict__["__annotations__"])
        names = [f.name for f in own_fields(cls)]
        assert names[:len(declared)] == declared and set(names[len(declared):]) >= runtime  # own fields first
        described = field_descriptions(cls)
        for name in runtime | (accelerated if issubclass(cls, AcceleratedConfig) else set()):
            assert described[name] == field_descriptions(AcceleratedConfig)[name], (cls.__name__, name)
    for name, cls in vars(config).items():  # no stage config declares them again
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and issubclass(cls, RuntimeConfig):
            own = set(cls.__dict__.get("__annotations__", {}))
            if cls not in (RuntimeConfig, AcceleratedConfig):
                assert not own & (runtime | accelerated), name
