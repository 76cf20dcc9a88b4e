"""Python peer of graft-lm's `bench_t5` example: one training step of
transformers' T5ForConditionalGeneration (random weights, the same
configuration, batch and lengths), in float32 and under PyTorch's CPU
bf16 autocast, with the same thread count. Prints one JSON line per
(model, precision).

    .venv/bin/python crates/graft-lm/python/bench_t5.py --threads 2
"""

import argparse
import json
import time
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import T5Config, T5ForConditionalGeneration  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.set_verbosity_error()

SIZES = {
    # t5-small's published configuration.
    "t5-small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    # graft's T5Config::t5_mini().
    "t5-mini": dict(d_model=256, d_kv=32, d_ff=1024, num_layers=4, num_heads=8),
}


def config(size):
    c = SIZES[size]
    return T5Config(vocab_size=32128, num_decoder_layers=c["num_layers"], feed_forward_proj="relu",
                    tie_word_embeddings=True, dropout_rate=0.0, decoder_start_token_id=0,
                    pad_token_id=0, eos_token_id=1, **c)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--source", type=int, default=100)
    ap.add_argument("--target", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="t5-mini,t5-small")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, 32100, (args.batch, args.source), generator=g)
    labels = torch.randint(3, 32100, (args.batch, args.target), generator=g)
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config(size)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for precision in ["f32", "bf16-autocast"]:
            def step():
                t0 = time.perf_counter()
                if precision == "f32":
                    loss = model(input_ids=src, labels=labels).loss
                else:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        loss = model(input_ids=src, labels=labels).loss
                loss.item()
                t1 = time.perf_counter()
                loss.backward()
                t2 = time.perf_counter()
                opt.step()
                opt.zero_grad(set_to_none=True)
                return {"forward": t1 - t0, "backward": t2 - t1,
                        "optimizer": time.perf_counter() - t2}

            step()
            runs = [step() for _ in range(args.repeats)]
            phases = {k: median([r[k] for r in runs]) for k in runs[0]}
            print(json.dumps({"workload": "train_step", "size": size, "precision": precision,
                              "seconds": median([sum(r.values()) for r in runs]), **phases,
                              "threads": torch.get_num_threads(),
                              "torch": torch.__version__, "transformers": transformers.__version__}),
                  flush=True)


if __name__ == "__main__":
    main()
