"""Readers of the official layouts: CXR time parsing, label policies, NIH labels, the image cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcam_lab.data.image_cache import open_image_cache
from medcam_lab.datasets.mimic_cxr import apply_label_policy, image_relpath, study_datetime
from medcam_lab.datasets.nih import NIH_PATHOLOGIES, nih_labels
from medcam_lab.prepare.image_cache import build_image_cache, load_and_resize


def test_study_time_is_zero_padded_and_fraction_dropped():
    got = study_datetime(pd.Series([21500101, 21500101, 21500101]), pd.Series([213014.531, 5012.0, 7.9]))
    assert got.tolist() == [pd.Timestamp("2150-01-01 21:30:14"), pd.Timestamp("2150-01-01 00:50:12"),
                            pd.Timestamp("2150-01-01 00:00:07")]


def test_image_relpath_official_layout():
    path = image_relpath(pd.Series([10000032]), pd.Series([50414267]), pd.Series(["02aa804e-bde0afdd"]))
    assert path.iloc[0] == "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"


@pytest.mark.parametrize("uncertain,blank,expected", [
    ("zeros", "zeros", [1.0, 0.0, 0.0, 0.0]),
    ("ones", "zeros", [1.0, 0.0, 1.0, 0.0]),
    ("ignore", "zeros", [1.0, 0.0, np.nan, 0.0]),
    ("zeros", "ignore", [1.0, 0.0, 0.0, np.nan]),
])
def test_label_policies(uncertain, blank, expected):
    raw = pd.DataFrame({"Edema": [1.0, 0.0, -1.0, np.nan]})
    got = apply_label_policy(raw, uncertain, blank)["Edema"].to_numpy()
    np.testing.assert_array_equal(got, np.array(expected))


def test_label_policy_rejects_unknown_names():
    with pytest.raises(ValueError, match="uncertain"):
        apply_label_policy(pd.DataFrame({"Edema": [1.0]}), "maybe", "zeros")


def test_nih_labels_exact_tokens(tmp_path):
    table_path = tmp_path / "Data_Entry_2017.csv"
    table_path.write_text("Image Index,Finding Labels,Patient ID,View Position\n"
                          "a.png,No Finding,1,PA\nb.png,Effusion|Pleural_Thickening,1,AP\nc.png,Mass,2,PA\n")
    table = nih_labels(table_path)
    assert list(table.columns[:14]) == list(NIH_PATHOLOGIES)
    assert table[list(NIH_PATHOLOGIES)].sum(axis=1).tolist() == [0.0, 2.0, 1.0]
    assert table.loc["b.png", "Pleural_Thickening"] == 1.0 and table.loc["c.png", "Mass"] == 1.0
    table_path.write_text("Image Index,Finding Labels,Patient ID,View Position\nd.png,Infiltrate,3,PA\n")
    with pytest.raises(ValueError, match="Infiltrate"):
        nih_labels(table_path)


def test_image_cache_reports_missing_and_corrupt_files(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray((np.arange(60 * 40) % 255).astype(np.uint8).reshape(60, 40)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[:50])
    missing = tmp_path / "missing.jpg"
    ok, failures = build_image_cache([good, corrupt, missing, good], tmp_path / "cache", size=16)
    assert ok.tolist() == [True, False, False, True]
    reasons = {f["path"]: f["reason"] for f in failures}
    assert reasons[str(missing)] == "file missing"
    assert reasons[str(corrupt)].startswith("unreadable image")
    cache = open_image_cache(tmp_path / "cache")
    assert cache.shape == (2, 16, 16) and cache.dtype == np.uint8
    np.testing.assert_array_equal(cache[0], load_and_resize(good, 16))


def test_resize_keeps_aspect_and_center_crops(tmp_path):
    img = np.zeros((80, 40), dtype=np.uint8)
    img[:, 10:30] = 255  # a bright vertical band in the middle
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    out = load_and_resize(path, 20)
    assert out.shape == (20, 20)
    assert out[:, 8:12].mean() > 200 and out[:, :2].mean() < 60


# ---- MIMIC-IV layouts, versions and streaming ---------------------------------------------------------

import gzip  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from medcam_lab.datasets.mimic_iv import MimicLayoutError, locate_mimic_iv, stream_events  # noqa: E402

V1_FIXTURE = Path(__file__).parent / "fixtures" / "mimic_iv_v1_0"
CHART_HEADER = "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,warning\n"


def v2_layout(root: Path, gz: bool = True, race: bool = True) -> Path:
    """The v1.0 fixture rearranged into the v2.x/v3.x layout (core/ merged into hosp/, race, .csv.gz)."""
    shutil.copytree(V1_FIXTURE, root)
    for path in (root / "core").iterdir():
        shutil.move(path, root / "hosp" / path.name)
    (root / "core").rmdir()
    admissions = root / "hosp" / "admissions.csv"
    if race:
        admissions.write_text(admissions.read_text().replace(",ethnicity,", ",race,"))
    if gz:
        for path in list(root.rglob("*.csv")):
            with gzip.open(path.with_suffix(".csv.gz"), "wb") as fh:
                fh.write(path.read_bytes())
            path.unlink()
    return root


def test_v2_layout_with_gzip_and_version_from_the_path(tmp_path):
    layout = locate_mimic_iv(v2_layout(tmp_path / "mimiciv" / "2.2"))
    assert (layout.version, layout.version_source, layout.demographic_column) == ("2.2", "path", "race")
    assert layout.patients.name == "patients.csv.gz" and layout.patients.parent.name == "hosp"
    assert layout.describe()["files"]["chartevents"].endswith("icu/chartevents.csv.gz")


def test_v3_layout_uncompressed_and_explicit_version(tmp_path):
    root = v2_layout(tmp_path / "physionet" / "mimic-iv-3.1", gz=False)
    assert locate_mimic_iv(root).version == "3.1"
    layout = locate_mimic_iv(root, version="3.0")
    assert (layout.version, layout.version_source) == ("3.0", "argument")
    assert layout.chartevents.name == "chartevents.csv"


def test_version_from_layout_when_the_path_does_not_tell(tmp_path):
    layout = locate_mimic_iv(v2_layout(tmp_path / "data"))
    assert (layout.version, layout.version_source) == ("2.x/3.x", "layout")


def test_missing_table_error_names_every_path_tried(tmp_path):
    root = v2_layout(tmp_path / "m")
    (root / "hosp" / "labevents.csv.gz").unlink()
    with pytest.raises(MimicLayoutError, match=r"'labevents' not found.*hosp/labevents.csv.gz.*hosp/labevents.csv"):
        locate_mimic_iv(root)


def test_admissions_without_race_or_ethnicity_is_an_error(tmp_path):
    root = v2_layout(tmp_path / "m", gz=False, race=False)
    admissions = root / "hosp" / "admissions.csv"
    admissions.write_text(admissions.read_text().replace(",ethnicity,", ",origin,"))
    with pytest.raises(MimicLayoutError, match="neither 'race'"):
        locate_mimic_iv(root)


def write_chart(path: Path, n_rows: int, gz: bool = True) -> bytes:
    rows = "".join(f"1,2,{30 + i % 3},5,2150-01-01 0{i % 10}:00:00,2150-01-01 0{i % 10}:05:00,"
                   f"{220045 if i % 4 else 229999},{i % 90},{i % 90},bpm,0\n" for i in range(n_rows))
    data = (CHART_HEADER + rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return data


def test_stream_counts_every_row_and_keeps_the_right_ones(tmp_path):
    path = tmp_path / "chartevents.csv.gz"
    write_chart(path, 5000)
    events, counts = stream_events(path, {220045}, pd.Series([30, 31]), key="stay_id", source="chartevents",
                                   block_size=4096)
    # literal count: item 220045 for i % 4 != 0, stays 30/31 for i % 3 in (0, 1)
    expected = [i for i in range(5000) if i % 4 and i % 3 in (0, 1)]
    assert len(events) == counts.rows_matched == len(expected)
    assert counts.rows_read == 5000 and counts.rows_other_items == 1250
    assert counts.rows_other_ids == 5000 - 1250 - len(expected)
    assert events["valuenum"].tolist() == [float(i % 90) for i in expected]
    assert events["charttime"].dt.hour.tolist() == [i % 10 for i in expected]


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "chartevents.csv.gz"
    write_chart(path, 20000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MimicLayoutError, match=r"chartevents.csv.gz.*truncated or corrupt file"):
        stream_events(path, {220045}, None, key="stay_id", source="chartevents", block_size=4096)


def test_truncated_plain_csv_row_is_an_error(tmp_path):
    path = tmp_path / "chartevents.csv"
    data = write_chart(path, 100, gz=False)
    path.write_bytes(data[:-30])  # the last row loses its last columns
    with pytest.raises(MimicLayoutError, match="chartevents.csv"):
        stream_events(path, {220045}, None, key="stay_id", source="chartevents")


def test_missing_event_column_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "labevents.csv"
    path.write_text("labevent_id,subject_id,hadm_id,itemid,charttime,value\n1,2,3,50931,2150-01-01 00:00:00,1\n")
    with pytest.raises(MimicLayoutError, match=r"labevents.csv lacks column\(s\) \['valuenum'\]"):
        stream_events(path, {50931}, None, key="hadm_id", source="labevents")


def test_malformed_id_is_an_error_not_a_silent_drop(tmp_path):
    path = tmp_path / "chartevents.csv"
    data = write_chart(path, 10, gz=False).decode()
    path.write_text(data.replace("\n1,2,31,", "\n1,2,3x1,", 1))
    with pytest.raises(MimicLayoutError, match="chartevents.csv"):
        stream_events(path, {220045}, None, key="stay_id", source="chartevents")


def test_gzip_truncated_mid_stream_is_an_error_after_counting(tmp_path):
    path = tmp_path / "chartevents.csv.gz"
    write_chart(path, 200_000)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(MimicLayoutError, match=r"chartevents.csv.gz \(truncated or corrupt file\? [\d,]+ rows read"):
        stream_events(path, {220045}, None, key="stay_id", source="chartevents", block_size=1 << 16)


def test_unparseable_charttime_is_a_counted_drop_and_other_spellings_parse(tmp_path):
    path = tmp_path / "chartevents.csv"
    path.write_text(CHART_HEADER
                    + "1,2,30,5,2150-01-01 04:00:00,x,220045,80,80,bpm,0\n"
                    + "1,2,30,5,2150-01-01T05:00:00,x,220045,81,81,bpm,0\n"
                    + "1,2,30,5,2150-01-01 06:30,x,220045,82,82,bpm,0\n"
                    + "1,2,30,5,yesterday noon,x,220045,83,83,bpm,0\n")
    events, counts = stream_events(path, {220045}, None, key="stay_id", source="chartevents")
    assert counts.rows_read == 4 and counts.rows_unparseable_charttime == 1
    assert events["charttime"].tolist() == [pd.Timestamp("2150-01-01 04:00"), pd.Timestamp("2150-01-01 05:00"),
                                            pd.Timestamp("2150-01-01 06:30")]
    assert events["valuenum"].tolist() == [80.0, 81.0, 82.0]


def test_progress_is_logged(tmp_path, caplog):
    path = tmp_path / "chartevents.csv.gz"
    write_chart(path, 3000)
    with caplog.at_level("INFO", logger="medcam_lab"):
        stream_events(path, {220045}, None, key="stay_id", source="chartevents", block_size=4096,
                      progress_seconds=0.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chartevents: ")]
    assert len(lines) >= 3 and "rows/s" in lines[0]
    assert lines[-1].startswith("chartevents: 3,000 rows read, 2,250 kept") and lines[-1].endswith("(done)")


def test_line_blocks_never_split_a_line():
    import io

    from medcam_lab.datasets.mimic_iv import _line_blocks

    lines = [b"header,x\n"] + [b"%d,%s\r\n" % (i, b"y" * (i % 37)) for i in range(500)] + [b"last,no-newline"]
    text = b"".join(lines)
    for block_size in (1, 7, 64, 1000, len(text) + 5):
        blocks = list(_line_blocks(io.BytesIO(text), block_size))
        assert b"".join(blocks) == text[len(lines[0]):]
        assert all(block.endswith(b"\n") for block in blocks[:-1]) and blocks[-1].endswith(b"last,no-newline")


def test_stream_result_does_not_depend_on_block_size_and_reads_quotes_crlf_and_last_line(tmp_path):
    path = tmp_path / "chartevents.csv"
    rows = [f'1,2,30,5,2150-01-01 0{i % 10}:00:00,x,220045,"{i}, with a comma",{i},bpm,0' for i in range(3000)]
    path.write_bytes((CHART_HEADER + "\r\n".join(rows)).encode().replace(b"\n", b"\r\n", 1))  # CRLF, no final newline
    frames = [stream_events(path, {220045}, None, key="stay_id", source="chartevents", block_size=size)[0]
              for size in (64, 4096, 1 << 20)]
    assert len(frames[0]) == 3000 and frames[0]["value"].iloc[-1] == "2999, with a comma"
    assert frames[0]["valuenum"].tolist() == [float(i) for i in range(3000)]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_the_mimic_cxr_label_table_reader_refuses_extra_columns_bad_values_and_repeated_studies(tmp_path):
    """One reader of ``mimic-cxr-2.0.0-chexpert.csv`` for ``prepare`` and the dataset class."""
    from medcam_lab.config import LABELS_CHEXPERT14
    from medcam_lab.datasets import load_labels
    from medcam_lab.datasets.mimic_cxr import read_chexpert_table

    header = ["subject_id", "study_id", *LABELS_CHEXPERT14]
    row = ["10000032", "50414267", *(["1.0", "", "-1.0", "0.0"] * 4)[: len(LABELS_CHEXPERT14)]]
    path = tmp_path / "mimic-cxr-2.0.0-chexpert.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    table = read_chexpert_table(path)
    assert table.loc[0, "Atelectasis"] == 1.0 and np.isnan(table.loc[0, "Cardiomegaly"])
    path.write_text(",".join([*header, "Extra"]) + "\n" + ",".join([*row, "x"]) + "\n")
    for read in (read_chexpert_table, lambda p: load_labels("mimic_cxr", p)):
        with pytest.raises(MimicLayoutError, match=r"unknown column\(s\) \['Extra'\]"):
            read(path)
    path.write_text(",".join(header) + "\n" + ",".join([*row[:2], "2.0", *row[3:]]) + "\n")
    with pytest.raises(MimicLayoutError, match="'Atelectasis' holds values other than"):
        read_chexpert_table(path)
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n" + ",".join(row) + "\n")
    with pytest.raises(MimicLayoutError, match="study_id 50414267 appears twice"):
        read_chexpert_table(path)
