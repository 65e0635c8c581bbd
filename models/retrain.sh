#!/usr/bin/env bash
# One command for the shipped generators' last stage (models/README.md, "Stage 5" and "Stage 6"):
# render the data with the virtual Kinect, fine-tune both generators on scan and procedural people
# (the AE with stage 6's learning rate and epochs), export, and score them on held-out people.
# Made for a machine with a GPU and many cores; the same script runs anywhere (SCALE=quick
# renders and trains a few minutes' worth, to check it).
#
#   FACE_MODEL=PATH [OUT=runs/retrain] [SCALE=full|quick] [WORKERS=N] [DEVICE=auto|cpu|cuda] models/retrain.sh
#
# FACE_MODEL: the ICT-FaceKit FaceXModel folder, or the compact cache file that loading it once
# wrote (`~/.cache/facedepth/facekit-*.npz`, 25 MB): carry that file to a machine without the kit.
# Nothing is downloaded. Outputs go under OUT (datasets, runs, the two ONNX files, the reports);
# models/weights is not touched: copy the exports there when the reports and the shipped models'
# tests say they are better (the AE of this recipe is shipped; its cGAN was not: it loses the
# identity stage 3 gave, see the model card's "Stage 5").
set -euo pipefail
cd "$(dirname "$0")/.."

: "${FACE_MODEL:?set FACE_MODEL to the ICT-FaceKit FaceXModel folder or its cache .npz file}"
OUT=${OUT:-runs/retrain}
SCALE=${SCALE:-full}
WORKERS=${WORKERS:-$(nproc)}
DEVICE=${DEVICE:-auto}
PY=${PYTHON:-python}
export FACEDEPTH_FACE_MODEL=$FACE_MODEL

case $SCALE in
  full)  PEOPLE=300; TEST_FRAMES=1800; EPOCHS_AE=4; EPOCHS_GAN=3; LIMIT=() ;;
  quick) PEOPLE=4; TEST_FRAMES=60; EPOCHS_AE=1; EPOCHS_GAN=1; LIMIT=(--max-train-samples 64) ;;
  *) echo "retrain.sh: SCALE must be full or quick, got '$SCALE'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
last=$((PEOPLE - 1))
frames=$((PEOPLE * 300))   # one 10-s mixed sequence per person, every 10th frame kept: 30 crops each

if [ ! -f "$OUT/scan.npz" ]; then
  $PY launch.py build-dataset \
    --source "virtual:heads=scan,seed=51,identity_seed=7,subjects=3000-$((3000 + last)),sequence=mixed,frames=$frames" --split train \
    --source "virtual:heads=scan,seed=3,identity_seed=7,subjects=120-139,frames=$((TEST_FRAMES * 2 / 3)),sequence_frames=30" --split val \
    --every 10 --workers "$WORKERS" --quiet --out "$OUT/scan.npz"
fi
if [ ! -f "$OUT/procedural.npz" ]; then
  $PY launch.py build-dataset \
    --source "virtual:heads=procedural,seed=41,identity_seed=7,subjects=1000-$((1000 + last)),sequence=mixed,frames=$frames" --split train \
    --source "virtual:heads=procedural,seed=3,identity_seed=7,subjects=120-139,frames=$((TEST_FRAMES * 2 / 3)),sequence_frames=30" --split val \
    --every 10 --workers "$WORKERS" --quiet --out "$OUT/procedural.npz"
fi
for heads in procedural scan; do
  if [ ! -f "$OUT/heldout_$heads.npz" ]; then
    $PY launch.py build-dataset \
      --source "virtual:heads=$heads,seed=4,identity_seed=7,subjects=140-169,frames=$TEST_FRAMES,sequence_frames=30" --split test \
      --workers "$WORKERS" --quiet --out "$OUT/heldout_$heads.npz"
  fi
done

common=(--data "$OUT/scan.npz" --data "$OUT/procedural.npz" --batch-size 16 --beta1 0.9 --seed 0
        --relief-weight 1 --face-weight 3 --device "$DEVICE" --quiet "${LIMIT[@]}")
$PY launch.py train "${common[@]}" --mode ae --epochs "$EPOCHS_AE" --lr 0.0003 \
  --init models/weights/generator_ae.pt --out "$OUT/ae" --force
$PY launch.py train "${common[@]}" --mode cgan --epochs "$EPOCHS_GAN" --lr 0.0005 --lr-d 0.0002 --adv-weight 0.002 \
  --init models/weights/generator.pt --out "$OUT/cgan" --force
$PY launch.py export --checkpoint "$OUT/ae/best.pt" --out "$OUT/generator_ae.onnx" --slim-checkpoint "$OUT/generator_ae.pt" --force
$PY launch.py export --checkpoint "$OUT/cgan/best.pt" --out "$OUT/generator.onnx" --slim-checkpoint "$OUT/generator.pt" --force

for heads in procedural scan; do
  $PY launch.py evaluate --data "$OUT/heldout_$heads.npz" --mean-from "$OUT/$heads.npz" \
    --models "$OUT/generator.onnx,$OUT/generator_ae.onnx,models/weights/generator.onnx,models/weights/generator_ae.onnx" \
    --report "$OUT/eval_$heads.json" --figure "$OUT/eval_$heads.png" --force
done
echo "retrain.sh: done; reports in $OUT/eval_procedural.json and $OUT/eval_scan.json"
