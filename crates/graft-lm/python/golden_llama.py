"""Writes a tiny randomly initialised Hugging Face LlamaForCausalLM and its
logits, the golden fixture of `Llama::from_hf_dir` (Hugging Face layout:
unpermuted Q/K, rotate-half RoPE, grouped-query attention, untied head).

    .venv/bin/python crates/graft-lm/python/golden_llama.py --out crates/graft-lm/tests/fixtures/llama_tiny
"""

import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(11)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                      max_position_embeddings=64, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(args.out, safe_serialization=True)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 64, (2, 20), generator=g)
    with torch.no_grad():
        logits = model(ids).logits
    save_file({"input_ids": ids, "logits": logits.contiguous()}, os.path.join(args.out, "golden.safetensors"))
    print(sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
