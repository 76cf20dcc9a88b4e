"""Python peer of graft-lm's `bench_lm` example: SmolLM2-135M-Instruct in
Hugging Face transformers (float32, loaded from the same GGUF), timed with
the same workloads and thread count. Prints one JSON line per workload (generation, forward, LoRA training
step with PEFT).

    .venv/bin/python crates/graft-lm/python/bench_lm.py --gguf FILE --threads 2
"""

import argparse
import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.set_verbosity_error()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minilm", required=True, help="all-MiniLM-L6-v2 model directory")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d, f = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    ids = tok("The capital of France is", return_tensors="pt", add_special_tokens=False).input_ids
    times = []
    with torch.no_grad():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
            times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(json.dumps({"workload": "generate", "impl": "transformers", "tokens_per_s": args.new_tokens / t,
                      "seconds": t, "threads": torch.get_num_threads(),
                      "transformers": __import__("transformers").__version__}), flush=True)
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(3, 49152, (args.batch, args.seq), generator=g)
    times = []
    with torch.no_grad():
        model(batch)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(batch).logits
            times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(json.dumps({"workload": "forward", "impl": "transformers", "tokens_per_s": args.batch * args.seq / t,
                      "seconds": t, "threads": torch.get_num_threads()}), flush=True)
    # LoRA training step, as graft's: r 8 on q_proj/v_proj, loss on the last
    # 16 tokens of each sequence (labels -100 elsewhere), AdamW.
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                  target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    labels = batch.clone()
    labels[:, :112] = -100

    def step():
        out = peft_model(input_ids=batch, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    step()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(json.dumps({"workload": "train", "impl": "transformers+peft", "tokens_per_s": args.batch * args.seq / t,
                      "seconds": t, "threads": torch.get_num_threads(),
                      "peft": __import__("peft").__version__}), flush=True)
    # MiniLM sentence embeddings (mean pooling + L2 norm, as sentence-transformers).
    from transformers import AutoModel

    st_tok = AutoTokenizer.from_pretrained(args.minilm)
    st = AutoModel.from_pretrained(args.minilm).eval()
    sentences = [f"Item {i}: a {['beauty', 'sports', 'toy', 'book'][i % 4]} product for everyday use, "
                 f"rated {1 + i % 5} stars by user_{i * 7}" for i in range(256)]

    def encode():
        out = []
        with torch.no_grad():
            for k in range(0, len(sentences), 32):
                b = st_tok(sentences[k:k + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
                h = st(**b).last_hidden_state
                m = b["attention_mask"].unsqueeze(-1).float()
                e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(e, dim=-1))
        return torch.cat(out)

    encode()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        encode()
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    print(json.dumps({"workload": "minilm", "impl": "transformers", "tokens_per_s": len(sentences) / t,
                      "seconds": t, "threads": torch.get_num_threads()}), flush=True)
    print(f"python done ({args.threads} threads)", file=sys.stderr)


if __name__ == "__main__":
    main()
