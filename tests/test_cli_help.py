"""``--help`` of every generated flag: the field's description from its config's docstring, the allowed values
where the field has a fixed set, and no docstring markup."""

import dataclasses
import re

import pytest

from medcam_lab.batch import NOTEBOOK_CONFIGS
from medcam_lab.cli import COMMANDS, build_parser
from medcam_lab.config import BatchConfig
from medcam_lab.config_help import field_descriptions, missing_descriptions, plain_text

STAGE_CONFIGS = sorted({cls for _, cls, _, _ in COMMANDS.values()}
                       | {cls for classes in NOTEBOOK_CONFIGS.values() for cls in classes} | {BatchConfig},
                       key=lambda c: c.__name__)


def _flag_lines(text: str) -> dict[str, str]:
    """``{flag: its help on one line}`` (a long flag has its help on the next line)."""
    out: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-"):
            flag = next(word.rstrip(",") for word in stripped.split() if word.startswith("--"))
            out[flag] = stripped
        elif flag and stripped and line.startswith("   "):
            out[flag] += " " + stripped
        else:
            flag = None
    return out


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per flag: the texts compare without wrapping
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args([*argv, "--help"])
    assert stopped.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("cls", STAGE_CONFIGS, ids=lambda c: c.__name__)
def test_every_field_of_every_stage_config_has_a_docstring_description(cls):
    assert missing_descriptions(cls) == []
    assert all(text.strip() for text in field_descriptions(cls).values())


def test_attributes_entries_name_several_fields_continue_on_indented_lines_and_must_be_fields():
    @dataclasses.dataclass(frozen=True)
    class Example:
        """Summary with ``markup``.

        Attributes:
            alpha, beta: shared ``text`` for both,
                continued here (see :class:`Example`).
            gamma: own text.

        Notes after the section.
        """

        alpha: int = 0
        beta: int = 0
        gamma: str = ""

    assert field_descriptions(Example) == {
        "alpha": "shared text for both, continued here (see Example).",
        "beta": "shared text for both, continued here (see Example).",
        "gamma": "own text.",
    }

    @dataclasses.dataclass(frozen=True)
    class Stale:
        """Attributes:
            gone: a field that was removed.
        """

        kept: int = 0

    with pytest.raises(ValueError, match="gone"):
        field_descriptions(Stale)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_stage_help_shows_each_fields_description_and_default(command, capsys, monkeypatch):
    _, cls, required, _ = COMMANDS[command]
    text = _help(capsys, monkeypatch, command)
    lines = _flag_lines(text)
    defaults = cls()
    for name, description in field_descriptions(cls).items():
        line = lines["--" + name.replace("_", "-")]
        assert description.rstrip(".") in line, (name, line)
        default = getattr(defaults, name)
        shown = (" ".join(map(str, default)) or "none") if isinstance(default, tuple) else repr(default)
        expected = "(required)" if name in required else f"(default: {shown})"
        assert line.rstrip().endswith(expected), (name, line)
    assert "``" not in text and not re.search(r":[a-z]+:`", text)


def test_fixed_value_sets_are_listed_from_the_modules_that_check_them(capsys, monkeypatch):
    from medcam_lab.datasets.vindr import MERGE_RULES
    from medcam_lab.ehr.discretizer import IMPUTE_STRATEGIES
    from medcam_lab.ehr.mode import COMPAT_MODES
    from medcam_lab.models.aligner import BACKBONE_MODES
    from medcam_lab.models.image_encoders import list_image_encoders
    from medcam_lab.prepare.images import PREPARABLE
    from medcam_lab.training.runtime import PRECISIONS, SWITCH_VALUES

    def flag_line(text: str, flag: str) -> str:
        return _flag_lines(text)[flag]

    align = _help(capsys, monkeypatch, "align")
    assert f"One of: {', '.join(list_image_encoders())}." in flag_line(align, "--encoder")
    assert f"One of: {', '.join(BACKBONE_MODES)}." in flag_line(align, "--backbone-mode")
    assert f"One of: {', '.join(PRECISIONS)}." in flag_line(align, "--precision")
    for flag in ("--channels-last", "--compile"):
        assert f"One of: {', '.join(SWITCH_VALUES)}." in flag_line(align, flag)
    assert "One of" not in flag_line(align, "--lr") and "One of" not in flag_line(align, "--device")
    assert "random initialisation" in flag_line(align, "--weights")
    prepare = _help(capsys, monkeypatch, "prepare")
    assert f"One of: {', '.join(COMPAT_MODES)}." in flag_line(prepare, "--compat")
    assert f"One of: {', '.join(IMPUTE_STRATEGIES)}." in flag_line(prepare, "--impute-strategy")
    images = _help(capsys, monkeypatch, "prepare-images")
    assert f"One of: {', '.join(PREPARABLE)}." in flag_line(images, "--dataset")
    assert f"One of: {', '.join(MERGE_RULES)}." in flag_line(images, "--merge")
    finetune = _help(capsys, monkeypatch, "finetune")
    assert "random initialisation" in flag_line(finetune, "--weights")


def test_batch_help_lists_the_params_files_and_the_top_level_help_has_no_markup(capsys, monkeypatch):
    batch = _help(capsys, monkeypatch, "batch")
    assert "One of: chexpert, demo, mimic, nih, vindr." in batch  # params/*.yaml but common.yaml
    assert field_descriptions(BatchConfig)["run_id"] in batch
    top = _help(capsys, monkeypatch)
    assert "``" not in top and "The medcam-lab command line" in top
    assert "show this help message and exit\n" in top  # argparse's own texts are left as they are


def test_plain_text_removes_roles_and_double_backquotes():
    assert plain_text("see :mod:`medcam_lab.batch` and ``out/seed_<s>``") == "see medcam_lab.batch and out/seed_<s>"
