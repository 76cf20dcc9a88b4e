#!/bin/sh
# The GPU check of a graft device bundle (`cargo xtask device-bundle`).
#
# On the device machine, from the repository root, with the bundle carried:
#   sh target/device-bundle/carry/check.sh "$OUT"
# It runs against the libtorch of the machine's own PyTorch (2.11.0+cu130;
# the bundle was built for exactly that version) and writes into OUT:
#   gpu.txt               nvidia-smi -L
#   test-*.log            the CUDA tests of graft-graph, graft-propagate,
#                         graft-lm and graft-lora (they fail, not skip, without a GPU)
#   compare.log, compare/ LightGCN propagation on Beauty (d 512, L 4) and the
#                         GAT expert step: graft's libtorch paths against
#                         PyTorch (and PyG) on the same GPU
#   elmrec.log, elmrec/   200 ELMRec training steps of t5-small (bf16) on Beauty
#   elcorec.log, elcorec/ 50 ELCoRec steps (64 RAP prompts each, LoRA, GAT
#                         token) of SmolLM2-135M's architecture with seeded
#                         random weights (timing only) on MovieLens-100K
#   summary.json          all of the above in one file
# Each part has its own time limit, cut so that the parts after it keep
# theirs and the whole script stays under 8 minutes. Exit status: 0 only if every
# CUDA test passed.
set -u
B=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: check.sh OUT_DIR}
mkdir -p "$OUT"
PY=${GRAFT_PYTHON:-python3}
start=$(date +%s)

TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || {
    echo "no PyTorch in $PY" >&2
    exit 2
}
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' >"$OUT/torch.txt" 2>&1
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi -L >"$OUT/gpu.txt" 2>&1

# The binaries travel compressed.
"$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$B/bin.tar.xz" "$B" || exit 2
# Test binaries read their fixtures at the absolute path they were built in.
ROOT=$(cat "$B/build_root")
if [ ! -e "$ROOT" ]; then
    mkdir -p "$(dirname "$ROOT")" && ln -s "$B/src" "$ROOT"
fi

# Seconds a part may run: its own limit, or what is left of 8 minutes
# (less 15 s for the summary) after RESERVE seconds are kept for the parts
# after it, whichever is smaller.
limit() {
    left=$((start + 465 - $2 - $(date +%s)))
    [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
# part LIMIT RESERVE COMMAND...: runs a part under `limit`, or records that
# no time was left (status 124).
part() {
    secs=$(limit "$1" "$2")
    shift 2
    if [ "$secs" -lt 5 ]; then
        echo "no time left" >&2
        return 124
    fi
    timeout "$secs" "$@"
}

export GRAFT_PYTHON="$PY"
status=0
: >"$OUT/tests.txt"
for t in "$B"/bin/test-*; do
    name=$(basename "$t")
    part 90 300 "$t" cuda --test-threads 1 >"$OUT/$name.log" 2>&1
    rc=$?
    echo "$name $rc" >>"$OUT/tests.txt"
    [ $rc -eq 0 ] || status=1
done

# The MiniLM files stay behind: every item embedding is in the cache.
part 130 170 "$B/bin/elcorec" --data "$B/data/ml-100k" --models elcorec \
    --gguf "$B/smollm2-meta.gguf" --llm-random-weights 0 \
    --embedding-cache "$B/embeddings" --minilm "$B/no-minilm" \
    --device cuda --bf16 --gat-max-steps 100 --max-steps 50 --llm-train-samples 3200 \
    --valid-samples 100 --llm-valid-samples 100 --test-samples 100 \
    --budget-minutes 2 --out "$OUT/elcorec" >"$OUT/elcorec.log" 2>&1
echo "elcorec $?" >>"$OUT/tests.txt"

part 80 90 "$B/bin/elmrec" --data "$B/data/amazon/beauty" --tokenizer "$B/tokenizer.json" \
    --backbone t5-small --variants none --tasks both --no-baselines --no-plots --bf16 \
    --device cuda --max-steps 200 --eval-every 1000 --valid-users 20 --test-users 20 \
    --budget-minutes 3 --out "$OUT/elmrec" >"$OUT/elmrec.log" 2>&1
echo "elmrec $?" >>"$OUT/tests.txt"

part 90 0 "$B/bin/compare" --device cuda --dims 512 --layers 4 --threads 16 --repeats 7 \
    --shared-data "$B/data" --python "$PY" --out "$OUT/compare" >"$OUT/compare.log" 2>&1
echo "compare $?" >>"$OUT/tests.txt"

"$PY" "$B/summary.py" "$OUT" "$(($(date +%s) - start))"
exit $status
