"""Bounded-memory ``prepare``: events spilled by stay hash and processed a partition at a time.

The reference is ``prepare`` with every event in one partition (the default on a small cohort): cutting
the events into many partitions must give the same cohort, byte for byte, in both EHR modes.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from medcam_lab.cli import main
from medcam_lab.config import PrepareConfig
from medcam_lab.ehr import clean_events
from medcam_lab.ehr.itemids import ITEMID_TO_VARIABLE
from medcam_lab.prepare import event_spill
from medcam_lab.prepare.cohort import prepare_cohort
from medcam_lab.prepare.event_spill import EventSpill, SpillError, bucket_of


def _prepare(raw: Path, out: Path, compat: str, **extra) -> dict:
    cfg = PrepareConfig(mimic_cxr=str(raw / "mimic-cxr-jpg"), mimic_iv=str(raw / "mimic-iv"), out=str(out),
                        compat=compat, image_cache_size=36, **extra)
    return prepare_cohort(cfg)


def _comparable(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for entry in report["event_files"].values():
        entry.pop("seconds")
    report.pop("event_spill")
    return report


@pytest.mark.parametrize("compat", ["clean", "medfuse"])
def test_many_partitions_give_the_same_cohort_as_one(tiny_raw, tmp_path, compat):
    one = _prepare(tiny_raw, tmp_path / "one", compat)
    many = _prepare(tiny_raw, tmp_path / "many", compat, partition_events=1)  # every bucket alone
    assert one["event_spill"]["partitions"] == 1
    assert many["event_spill"]["partitions"] > 30  # the stays really are spread over the buckets
    assert _comparable(many) == _comparable(one)
    for name in ("ehr_values.npy", "normalizer.json", "ehr_columns.json", "images_uint8.npy"):
        assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    for name in ("pairs.parquet", "labels_raw.parquet"):
        many_frame, one_frame = (pd.read_parquet(tmp_path / run / name) for run in ("many", "one"))
        pd.testing.assert_frame_equal(many_frame, one_frame)
    assert not (tmp_path / "many" / ".event_spill").exists()
    # the report's counts are the real ones: every chart row read is accounted for
    files = many["event_files"]["chartevents"]
    assert files["rows_read"] == files["rows_other_items"] + files["rows_other_ids"] + files["rows_kept"]


def test_full_disk_while_spilling_is_a_clear_error_and_leaves_no_openable_cohort(tiny_raw, tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    _prepare(tiny_raw, out, "clean")  # a finished cohort that the failing run replaces
    assert (out / "pairs.parquet").exists()

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(event_spill.pq.ParquetWriter, "write_table", full_disk)
    with pytest.raises(SpillError, match="disk full") as caught:
        _prepare(tiny_raw, out, "clean")
    assert caught.value.errno == errno.ENOSPC
    assert str(out / ".event_spill") in str(caught.value)
    assert not (out / "pairs.parquet").exists()  # the old cohort's marker is gone, no new one written
    assert not (out / ".event_spill").exists()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        from medcam_lab.data.cohort import load_cohort

        load_cohort(out)


def test_spill_dir_elsewhere_is_used_and_removed(tiny_raw, tmp_path, monkeypatch):
    seen = []
    real_enter = EventSpill.__enter__

    def spy(self):
        seen.append(self.directory)
        return real_enter(self)

    monkeypatch.setattr(EventSpill, "__enter__", spy)
    _prepare(tiny_raw, tmp_path / "cohort", "clean", spill_dir=str(tmp_path / "scratch"))
    assert seen == [tmp_path / "scratch" / ".event_spill"]
    assert not seen[0].exists()


def test_cli_takes_the_partition_flags(tiny_raw, tmp_path):
    argv = ["prepare", "--mimic-cxr", str(tiny_raw / "mimic-cxr-jpg"), "--mimic-iv", str(tiny_raw / "mimic-iv"),
            "--out", str(tmp_path / "c"), "--image-cache-size", "36", "--partition-events", "5000"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["event_spill"]["partitions"] > 1
    assert report["event_spill"]["buckets"] >= 64


def test_bucket_count_grows_with_the_input_to_keep_partitions_small():
    assert event_spill.buckets_for(250_000, 500_000) == 64  # the floor
    assert event_spill.buckets_for(432_000_000, 500_000) == 1024  # all of MIMIC-IV v2.2: the cap
    n = event_spill.buckets_for(40_000_000, 500_000)
    assert n == 256 and 40_000_000 / n <= 500_000  # a power of two with room for the hash's unevenness
    assert event_spill.buckets_for(10**12, 1) == event_spill.MAX_BUCKETS


def test_row_estimate_from_the_file_size_is_an_upper_bound(tiny_raw):
    path = tiny_raw / "mimic-iv" / "icu" / "chartevents.csv.gz"
    rows = len(pd.read_csv(path, usecols=["itemid"]))
    assert rows <= event_spill.estimated_rows(path) < 3 * rows


def test_too_few_open_files_allowed_is_a_clear_error(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (256, 512))
    with pytest.raises(OSError, match="needs 1280 open files but the limit is 512"):
        event_spill._ensure_open_files(1280)


def test_bucket_of_is_a_deterministic_spread_hash():
    ids = np.arange(30_000_000, 30_006_400)
    buckets = bucket_of(ids, 64)
    assert buckets.min() >= 0 and buckets.max() < 64
    np.testing.assert_array_equal(buckets, bucket_of(ids.copy(), 64))
    counts = np.bincount(buckets, minlength=64)
    assert counts.min() > 0.7 * 100 and counts.max() < 1.3 * 100  # 6,400 consecutive ids: ~100 per bucket
    literal = [((int(i) * 0x9E3779B97F4A7C15) % 2**64 >> 32) % 64 for i in ids[:50]]
    assert buckets[:50].tolist() == literal


def _table(stays: list[int], start: int) -> pa.Table:
    return pa.table({"stay_id": pa.array(stays, pa.int64()), "row": pa.array(range(start, start + len(stays)))})


def test_spill_keeps_every_row_once_in_file_order_per_bucket(tmp_path):
    rng = np.random.default_rng(0)
    stays = rng.integers(1, 200, size=5_000)
    with EventSpill(tmp_path / "spill", n_buckets=8, buffer_rows=700) as spill:  # several flushes
        for lo in range(0, len(stays), 333):
            part = stays[lo:lo + 333].tolist()
            spill.add("chartevents", _table(part, lo), np.asarray(part))
        spill.finish()
        groups = spill.groups(max_rows=1_500)
        flat = [b for g in groups for b in g]
        assert sorted(flat) == sorted(set(bucket_of(stays, 8).tolist()))  # each non-empty bucket exactly once
        assert all(spill.row_count(g) <= 1_500 or len(g) == 1 for g in groups)
        schema = _table([], 0).schema
        read = pa.concat_tables([spill.read("chartevents", g, schema) for g in groups]).to_pandas()
        assert spill.read("labevents", groups[0], schema).num_rows == 0  # a source never added: empty
    assert not (tmp_path / "spill").exists()
    assert sorted(read["row"]) == list(range(len(stays)))  # nothing lost, nothing twice
    assert (read["stay_id"].to_numpy() == stays[read["row"].to_numpy()]).all()
    read["bucket"] = bucket_of(read["stay_id"].to_numpy(), 8)
    for _, rows in read.groupby("bucket"):
        assert rows["row"].is_monotonic_increasing  # file order inside a bucket


def test_spill_left_by_a_killed_run_is_replaced_but_foreign_files_are_kept(tmp_path, caplog):
    stale = tmp_path / "spill"
    stale.mkdir()
    (stale / "chartevents-003.parquet").write_bytes(b"half")
    (stale / "labevents-1017.parquet").write_bytes(b"half")  # a bucket of four digits (up to 1,024 buckets)
    with EventSpill(stale) as spill:
        assert not any(stale.iterdir()) and spill.rows == {}
    assert "did not finish" in caplog.text
    stale.mkdir()
    (stale / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not event spill files"), EventSpill(stale):
        pass
    assert (stale / "notes.txt").read_text() == "mine"


def test_lab_rows_are_filed_under_the_stay_of_their_admission():
    got = event_spill.stay_ids_of_labs(pa.array([11, 13, 11]), np.array([13, 11]), np.array([300, 100]))
    assert got.tolist() == [100, 300, 100]
    with pytest.raises(ValueError, match="without a kept ICU stay"):
        event_spill.stay_ids_of_labs(pa.array([12]), np.array([13, 11]), np.array([300, 100]))


def test_clean_events_counts_every_row_of_every_variable():
    items = [220045, 220045, 220210, 999999, 223835]
    events = pd.DataFrame({"itemid": items, "value": ["80", "", "x", "1", "50"], "valuenum": np.nan, "label": "x"})
    _, counts = clean_events(events, mode="medfuse")
    expected = pd.Series([ITEMID_TO_VARIABLE.get(i) for i in items]).dropna().value_counts().to_dict()
    assert counts["rows_per_variable"] == expected


def test_partition_size_below_one_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="partition_events=0"):
        prepare_cohort(PrepareConfig(mimic_cxr="x", mimic_iv="y", out=str(tmp_path / "c"), partition_events=0))
