"""The polars stand-in that `make gpu-kit` carries to the lent GPU machine (training/gpu_standin) must
answer ultralytics' one call exactly as polars does, or the trainer there breaks or misreads its metrics."""

import importlib.util

import polars

from detector.taxonomy import REPO_ROOT

# results.csv as ultralytics 8.4 writes it (a real run's first rows), plus a row with an empty cell
RESULTS = (
    "epoch,time,train/box_loss,train/cls_loss,train/l1_loss,metrics/precision(B),metrics/recall(B),"
    "metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/l1_loss,lr/pg0,lr/pg1,lr/pg2\n"
    "1,1084.65,1.84708,3.52542,0.01855,0.40455,0.18695,0.17231,0.10624,1.66964,3.39422,0.0211,0.0002,0.0002,0.0002\n"
    "2,1956.76,1.82604,3.48906,0.01823,0.39621,0.20855,0.18623,0.11697,1.66686,3.35234,0.02116,0.000181093,0.000181093,0.000181093\n"
    "3,2831,1.8,3.4,0.018,0.4,0.2,0.19,0.12,1.6,3.3,,1e-05,1e-05,1e-05\n"
)


def _standin():
    path = REPO_ROOT / "training" / "gpu_standin" / "polars" / "__init__.py"
    spec = importlib.util.spec_from_file_location("polars_standin", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_standin_reads_results_csv_as_polars_does(tmp_path):
    data = RESULTS.encode()
    want = polars.read_csv(data, infer_schema_length=None).to_dict(as_series=False)
    got = _standin().read_csv(data, infer_schema_length=None).to_dict(as_series=False)
    assert list(got) == list(want)
    for col in want:
        assert got[col] == want[col], col
        assert [type(v) for v in got[col]] == [type(v) for v in want[col]], col
    assert got["epoch"] == [1, 2, 3] and got["time"][2] == 2831.0 and got["val/l1_loss"][2] is None
    # a path and a file object read the same
    f = tmp_path / "results.csv"
    f.write_bytes(data)
    assert _standin().read_csv(f).to_dict(as_series=False) == got
    with f.open("rb") as fh:
        assert _standin().read_csv(fh).to_dict(as_series=False) == got
