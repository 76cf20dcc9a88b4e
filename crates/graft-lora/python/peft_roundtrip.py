#!/usr/bin/env python3
"""Round trip of a graft-lora adapter through Hugging Face PEFT.

Used by `crates/graft-lora/tests/peft_roundtrip.rs`:

1. builds a tiny random LlamaForCausalLM (hidden 64, 2 layers, 4 heads,
   2 KV heads, intermediate 128, vocab 128; seeded);
2. loads the adapter directory written by graft-lora with
   `PeftModel.from_pretrained` and checks that PEFT adapted exactly the
   modules in our file, with every lora_A / lora_B tensor equal to ours and
   scaling alpha / r;
3. runs a forward with the adapter, with it disabled, and after
   `merge_and_unload`, and checks merged == unmerged (max abs < 1e-5) and
   that the adapter changes the output;
4. saves the adapter back with PEFT's `save_pretrained` into --save, for the
   Rust side to load with our loader.

Writes the logits to --outputs (safetensors) and a JSON summary to stdout.
Exit status 1 on any failed check.
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM
import peft
from peft import PeftModel


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=128,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(cfg).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="adapter dir written by graft-lora")
    ap.add_argument("--save", required=True, help="dir for PEFT's save_pretrained")
    ap.add_argument("--outputs", required=True, help="safetensors file for the logits")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)

    ours = load_file(os.path.join(args.adapter, "adapter_model.safetensors"))
    with open(os.path.join(args.adapter, "adapter_config.json")) as f:
        cfg = json.load(f)
    model = PeftModel.from_pretrained(tiny_llama(args.seed), args.adapter).eval()

    errors = []
    # PEFT names its parameters base_model.model.{module}.lora_A.default.weight;
    # the saved key drops the adapter name ("default").
    theirs = {
        n.replace(".default.weight", ".weight"): p.detach()
        for n, p in model.named_parameters()
        if ".lora_A." in n or ".lora_B." in n
    }
    if set(theirs) != set(ours):
        errors.append(
            f"adapted modules differ: only PEFT {sorted(set(theirs) - set(ours))}, "
            f"only ours {sorted(set(ours) - set(theirs))}"
        )
    for key in sorted(set(theirs) & set(ours)):
        if theirs[key].shape != ours[key].shape or not torch.equal(theirs[key], ours[key]):
            errors.append(f"{key}: PEFT's tensor differs from ours")
    scaling = cfg["lora_alpha"] / cfg["r"]
    for name, module in model.named_modules():
        if hasattr(module, "scaling") and isinstance(module.scaling, dict) and "default" in module.scaling:
            if abs(module.scaling["default"] - scaling) > 1e-12:
                errors.append(f"{name}: scaling {module.scaling['default']} != {scaling}")

    gen = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, 128, (2, 12), generator=gen)
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    model.save_pretrained(args.save)
    merged_model = model.merge_and_unload()
    with torch.no_grad():
        merged = merged_model(input_ids=ids).logits

    merge_diff = (merged - unmerged).abs().max().item()
    effect = (unmerged - base).abs().max().item()
    if not merge_diff < 1e-5:
        errors.append(f"merged vs unmerged logits differ by {merge_diff:.3e} >= 1e-5")
    if not effect > 1e-4:
        errors.append(f"the adapter barely changes the logits ({effect:.3e})")
    save_file(
        {"input_ids": ids, "unmerged": unmerged.contiguous(), "merged": merged.contiguous(), "base": base.contiguous()},
        args.outputs,
    )
    print(
        json.dumps(
            {
                "peft": peft.__version__,
                "tensors": len(ours),
                "trainable_params": sum(p.numel() for p in theirs.values()),
                "merge_max_abs_diff": merge_diff,
                "adapter_effect_max_abs": effect,
                "errors": errors,
            }
        )
    )
    for e in errors:
        print(f"ERROR: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
