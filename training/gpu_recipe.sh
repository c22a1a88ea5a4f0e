#!/usr/bin/env bash
# One-shot GPU training recipe for the shipped default model (used on a lent H100/H200, 16 cores).
# Generates fresh simulator data with every core, then fine-tunes the current default model on it
# for whatever time is left, and copies the weights, metrics and data summary to $OUT.
#
#   OUT=artifacts/gpu BUDGET_S=570 bash training/gpu_recipe.sh
#
# Environment: BUDGET_S (whole script, seconds), GEN_S (data generation), CHUNK (scans per
# generation call), CHUNKS (a fixed number of chunks instead of GEN_S), EPOCHS (a fixed number of
# epochs instead of the time left), WIDE (1: every second training chunk uses `xfd synth --wide`,
# the wider domain randomisation of generator 1.2.0 and, since 1.3.0, the fan beam on 70% of those scans; the shipped stage 3 ran without either; since 2.0.0 guns have the corrected magazine geometry; since 2.1.0 half of them hold gun-shaped tools; every chunk is 3.1.x: analytic bulky clutter and 45 kinds of contents, the shipped model false-alarms on tubes it never saw; 3.1.1 only adds each threat's visibility to the manifest), VAL_N, DEVICE (0 or cpu), WEIGHTS (checkpoint to start from), SEED0 (first
# seed; seeds 1-7 are the CPU training and test sets and are never used here), PLAIN_OPTS (more
# `xfd synth` options for the training chunks that are not wide, e.g. "--clutter 20,60" for packed
# parcels, the shifted set's main loss), RUNS and NAME (the run
# directory $RUNS/$NAME, default /tmp/xfd-gpu-runs/gpu), XFD (how to call the CLI).
# Long runs resume: `xfd train --resume --project $RUNS --name $NAME`.
#
# On this workplace's lent GPU machine (Python 3.12, torch 2.11, no package registry) the shipped
# stage ran as: carry .whl/ with cp312 wheels of ultralytics 8.4.190, ultralytics-thop 2.2.3,
# xraydb 4.5.8, sqlalchemy 2.1.9 and platformdirs 4.14.8 (pip download --no-deps --python-version
# 3.12 ...), plus a stand-in `polars` module offering read_csv(bytes).to_dict(as_series=False),
# the only polars call ultralytics' trainer makes with plots off (the polars wheel is 54 MB, over
# the transfer limit); then
#   pip install --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site:<stand-in dir>:$PWD BUDGET_S=530 bash training/gpu_recipe.sh
# The next run should draw parcels whose contents fit (generator 3.3.0; models/HISTORY.md, "Part of that was
# the simulator's") and vary the display wider (3.4.0; README, "Robustness to other scanners"):
# WIDE=1 SEED0=400 SYNTH_OPTS="--display-effects 0.3 --soft-contents 0.5 --fit-contents --display-jitter 0.3"
# and, to see more packed parcels, PLAIN_OPTS="--clutter 10,50". Worth adding there: `--side-view`
# (3.5.0: each plain parcel also as a dual-view scanner's side view, where most things lie on their
# edge or end, the shipped model's weakest poses; three CPU epochs could not learn them, models/HISTORY.md,
# "Side views did not help as a CPU fine-tune"; a GPU run can), i.e. PLAIN_OPTS="--clutter 10,50 --side-view".
# And `--belt-stretch 0.3` in SYNTH_OPTS (3.6.0: non-square pixels, 0.75-1.33x along the belt, which
# cost the shipped model 3-7 points of Pd in `xfd robustness`; detector/synth/CHANGES.md, 3.6.0).
set -euo pipefail
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-artifacts/gpu}
BUDGET_S=${BUDGET_S:-570}
GEN_S=${GEN_S:-200}
CHUNK=${CHUNK:-1000}
VAL_N=${VAL_N:-500}
DEVICE=${DEVICE:-0}
CONFIG=${CONFIG:-configs/gpu.yaml}
WEIGHTS=${WEIGHTS:-models/default/model.pt}
SEED0=${SEED0:-100}
# absolute: the dataset YAML names its root, and ultralytics reads relative roots from elsewhere
DATA=$(realpath -m "${DATA:-/tmp/xfd-gpu-data}")
RUNS=$(realpath -m "${RUNS:-/tmp/xfd-gpu-runs}")
OUT=$(realpath -m "$OUT")
NAME=${NAME:-gpu}
SYNTH_OPTS=${SYNTH_OPTS:---display-effects 0.3 --soft-contents 0.5}
W=$(nproc)
XFD=${XFD:-python3 -m detector.cli}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/recipe.log") 2>&1
echo "[$(el)s] start $(date -u +%FT%TZ) on $(hostname), $W cores, budget ${BUDGET_S}s"

# fail fast: everything the run needs, before the slow parts
python3 - <<'PY'
import torch, numpy, cv2
import detector, ultralytics, xraydb
from detector.synth.scene import GENERATOR_VERSION
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "numpy", numpy.__version__, "cv2", cv2.__version__, "ultralytics", ultralytics.__version__,
      "generator", GENERATOR_VERSION, flush=True)
PY

rm -rf "$DATA" && mkdir -p "$DATA/chunks"
$XFD synth --out "$DATA/chunks/val" --n "$VAL_N" --seed "$SEED0" --split val=1 --workers "$W" $SYNTH_OPTS >/dev/null
echo "[$(el)s] val: $VAL_N scans (seed $SEED0)"
seed=$((SEED0 + 1)); last=0
while :; do
  t=$(el)
  if [ -n "${CHUNKS:-}" ]; then [ "$seed" -gt "$((SEED0 + CHUNKS))" ] && break
  elif [ "$seed" -gt "$((SEED0 + 1))" ] && [ $((t + last)) -gt "$GEN_S" ]; then break; fi
  wide=""; if [ "${WIDE:-0}" = 1 ] && [ $(( (seed - SEED0) % 2 )) = 0 ]; then wide="--wide"; fi
  extra=${PLAIN_OPTS:-}; [ -n "$wide" ] && extra=""
  made="$CHUNK scans"   # one chunk's failure must not cost the lease: drop it, say so, go on with the next seed
  $XFD synth --out "$DATA/chunks/s$seed" --n "$CHUNK" --seed "$seed" --split train=1 --workers "$W" $SYNTH_OPTS $wide $extra >/dev/null \
    || { rm -rf "$DATA/chunks/s$seed"; made="FAILED, dropped,"; }
  last=$(( $(el) - t )); echo "[$(el)s] train chunk seed $seed${wide:+ (wide)}: $made in ${last}s"
  seed=$((seed + 1))
done

ALL="$DATA/all"
mkdir -p "$ALL/images/train" "$ALL/images/val" "$ALL/labels/train" "$ALL/labels/val"
for c in "$DATA"/chunks/*; do
  for s in train val; do
    [ -d "$c/images/$s" ] && find "$c/images/$s" -type f -exec mv -t "$ALL/images/$s" {} +
    [ -d "$c/labels/$s" ] && find "$c/labels/$s" -type f -exec mv -t "$ALL/labels/$s" {} +
  done
done
python3 - "$DATA" "$OUT/data_summary.json" <<'PY'
import json, sys
from pathlib import Path
import yaml
from detector.taxonomy import names
data, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
yaml.safe_dump({"path": str(data / "all"), "train": "images/train", "val": "images/val",
                "names": dict(enumerate(names()))}, open(data / "all" / "data.yaml", "w"), sort_keys=False)
chunks = []
for m in sorted(data.glob("chunks/*/manifest.json")):
    d = json.loads(m.read_text())
    chunks.append({k: d[k] for k in ("generator", "seed", "n", "split", "config", "counts", "seconds", "scans_per_second")})
summary = {"chunks": chunks,
           "train_scans": sum(c["counts"]["scans"].get("train", 0) for c in chunks),
           "val_scans": sum(c["counts"]["scans"].get("val", 0) for c in chunks),
           "objects": {n: sum(c["counts"]["objects"].get(n, 0) for c in chunks) for n in names()},
           "clean_scans": sum(c["counts"]["clean_scans"] for c in chunks)}
out.write_text(json.dumps(summary, indent=1))
print("data:", summary["train_scans"], "train,", summary["val_scans"], "val,", summary["clean_scans"], "clean,", summary["objects"], flush=True)
PY
echo "[$(el)s] data ready"

# copy weights out as they appear, so a run cut short still returns its last checkpoint
( while sleep 15; do
    for f in best.pt last.pt; do [ -f "$RUNS/$NAME/weights/$f" ] && cp -f "$RUNS/$NAME/weights/$f" "$OUT/$f.part" && mv -f "$OUT/$f.part" "$OUT/$f"; done
    [ -f "$RUNS/$NAME/results.csv" ] && cp -f "$RUNS/$NAME/results.csv" "$OUT/"
  done ) &
COPIER=$!
rc=0
if [ -n "${EPOCHS:-}" ]; then
  length="--epochs $EPOCHS"
else
  left=$(( BUDGET_S - $(el) - 50 ))   # 50 s: final validation of best.pt and the copies
  length="--hours $(python3 -c "print(max($left, 60) / 3600)")"
fi
echo "[$(el)s] training: $length"
$XFD train --data "$ALL/data.yaml" --config "$CONFIG" --weights "$WEIGHTS" --device "$DEVICE" \
  $length --project "$RUNS" --name "$NAME" || { rc=$?; echo "training exited with $rc"; }
kill $COPIER 2>/dev/null || true
if [ "$OUT" != "$RUNS/$NAME" ]; then   # both absolute already
  for f in weights/best.pt weights/last.pt results.csv args.yaml xfd_config.json; do
    [ -f "$RUNS/$NAME/$f" ] && cp -f "$RUNS/$NAME/$f" "$OUT/"
  done
  [ -d "$RUNS/$NAME" ] && cp -f "$OUT/data_summary.json" "$RUNS/$NAME/"   # the model card reads the data description from the run
fi
echo "[$(el)s] done"
exit "${rc:-0}"   # a failed training fails the recipe, after whatever it made was copied out
