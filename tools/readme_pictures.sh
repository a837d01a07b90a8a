#!/usr/bin/env bash
# Remake the README pictures (docs/images/) from the bundled model, with the commands the
# README shows beside them. Usage: tools/readme_pictures.sh DATA [RUN]
#   DATA: mini-CelebA or CelebA root (edits, latents, the two interpolation ends)
#   RUN:  the bundled model's training run (for progress.gif); skipped when absent
set -euo pipefail
data=${1:?usage: tools/readme_pictures.sh DATA [RUN]}
run=${2:-}
out=docs/images
# two valid-split faces for the interpolation ends; the partition file has CRLF endings
valid=$(tr -d '\r' < "$data/list_eval_partition.txt" | awk '$2==1{print $1}')
a=$(sed -n 1p <<< "$valid"); b=$(sed -n 10p <<< "$valid")

facevae sample --n 64 --seed 0 --out $out/samples_prior.png
facevae sample --n 64 --seed 0 --sampler gmm --out $out/samples_gmm.png
facevae sample --n 64 --seed 0 --sampler diffusion --out $out/samples_diffusion.png
# the same draws through the model's own decoder, beside the sharp one's (README, top)
facevae sample --n 64 --seed 0 --sampler gmm --decoder likelihood --out $out/samples_gmm_likelihood.png
facevae edit --data "$data" --split valid --n 6 --attribute Smiling --strengths -3,-1.5,0,1.5,3 --out $out/edit_smiling.png
facevae edit --data "$data" --split valid --n 6 --attribute Eyeglasses --strengths -3,-1.5,0,1.5,3 --out $out/edit_eyeglasses.png
facevae edit --data "$data" --split valid --n 6 --attribute Smiling=1 --attribute Male=-1 --strengths 0,1,2,3 \
  --out $out/edit_combined.png
facevae interpolate --images "$data/img_align_celeba/$a" "$data/img_align_celeba/$b" --mode slerp --steps 10 --scale 2 \
  --out $out/interpolate.png --gif $out/interpolate.gif
facevae interpolate --seed 3 --pairs 4 --steps 10 --out $out/interpolate_prior.png
tmp=$(mktemp -d)
facevae latents --data "$data" --attribute Male --out "$tmp" --no-progress
cp "$tmp"/latents_histograms.png "$tmp"/latents_kl.png "$tmp"/latents_pca.png $out/
rm -rf "$tmp"
# the bundled 128x128 model (README "128x128")
facevae sample --model celeba128 --n 25 --seed 0 --sampler gmm --out $out/c128_samples_gmm.png
facevae edit --model celeba128 --data "$data" --split valid --n 4 --attribute Smiling --strengths -3,-1.5,0,1.5,3 \
  --out $out/c128_edit_smiling.png
facevae interpolate --model celeba128 --images "$data/img_align_celeba/$a" "$data/img_align_celeba/$b" --mode slerp \
  --steps 8 --out $out/c128_interpolate.png --gif $out/c128_interpolate.gif
if [ -n "$run" ]; then facevae progress --run "$run" --out $out/progress.gif --width 530 --frames 20 --fps 4; fi
python tools/web_screenshot.py --out $out/web.png
python tools/web_screenshot.py --out $out/web_sticky.png --attribute Young
python tools/web_screenshot.py --out $out/web_mobile.png --viewport 390x844
