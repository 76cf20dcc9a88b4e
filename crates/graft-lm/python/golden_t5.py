"""Writes tiny randomly initialised Hugging Face T5 checkpoints and their
logits, the golden fixtures of graft-lm's T5 (no real T5 weights are
reachable offline, so the architecture is checked on random ones).

Two variants: t5-small style (ReLU, tied embeddings) and T5 v1.1 / Flan
style (gated GELU, separate lm_head). Inputs are long enough (40 encoder,
12 decoder tokens) to reach the logarithmic relative-position buckets, and
the batch has padding.

    .venv/bin/python crates/graft-lm/python/golden_t5.py --out crates/graft-lm/tests/fixtures
"""

import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

VARIANTS = {
    "t5_tiny_relu": dict(feed_forward_proj="relu", tie_word_embeddings=True),
    "t5_tiny_gated": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for name, extra in VARIANTS.items():
        torch.manual_seed(7)
        cfg = T5Config(vocab_size=48, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2,
                       num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=32,
                       dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **extra)
        model = T5ForConditionalGeneration(cfg).eval()
        # Non-trivial layer norms.
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("layer_norm.weight"):
                    p.add_(0.1 * torch.randn_like(p))
        d = os.path.join(args.out, name)
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(3)
        ids = torch.randint(2, 48, (2, 40), generator=g)
        mask = torch.ones(2, 40, dtype=torch.int64)
        mask[1, 25:] = 0
        ids[1, 25:] = 0
        dec = torch.randint(2, 48, (2, 12), generator=g)
        dec[:, 0] = 0
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        save_file({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec,
                   "logits": out.logits.contiguous(), "encoder_out": out.encoder_last_hidden_state.contiguous()},
                  os.path.join(d, "golden.safetensors"))
        print(name, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
