"""Writes tests/fixtures/adamw_golden.safetensors: a few torch.optim.AdamW steps.

Run from the workspace root with the project venv:

    .venv/bin/python crates/graft-train/python/adamw_golden.py

The fixture holds the initial parameters, the gradient of every step, the
learning rate of every step, the parameters after every step, the final
optimizer state, and the total norm returned by clip_grad_norm_ where a step
clips. `tests/adamw.rs` replays the same steps with `graft_train::AdamW`.

Parameters: `w` [3, 4] and `b` [4] receive gradients on every step; `u` [2, 2]
never does (its `.grad` stays None, so AdamW skips it). The CPU single-tensor
implementation is used (foreach=False), as on the Rust side.
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

STEPS = 6
LR = 0.01
BETAS = (0.9, 0.95)
EPS = 1e-6
WEIGHT_DECAY = 0.1
# Learning rate per step (a schedule is applied with set_lr on the Rust side).
LRS = [LR, LR, 0.02, 0.02, 0.005, 0.005]
# Steps whose gradients are clipped with clip_grad_norm_(max_norm=CLIP).
CLIP_STEPS = {3, 4}
CLIP = 0.5


def main() -> None:
    torch.manual_seed(20240611)
    out = {}
    params = {
        "w": torch.randn(3, 4),
        "b": torch.randn(4),
        "u": torch.randn(2, 2),
    }
    for name, p in params.items():
        out[f"init.{name}"] = p.clone()
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        list(params.values()),
        lr=LR,
        betas=BETAS,
        eps=EPS,
        weight_decay=WEIGHT_DECAY,
        foreach=False,
        fused=False,
    )
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[t]
        opt.zero_grad(set_to_none=True)
        for name in ("w", "b"):
            g = torch.randn_like(params[name]) * (0.5 + t)
            out[f"grad.{t}.{name}"] = g.clone()
            params[name].grad = g
        if t in CLIP_STEPS:
            norm = torch.nn.utils.clip_grad_norm_(
                [params["w"], params["b"]], CLIP, foreach=False
            )
            out[f"norm.{t}"] = norm.reshape(1).to(torch.float64)
        opt.step()
        for name, p in params.items():
            out[f"after.{t}.{name}"] = p.detach().clone()
    for name in ("w", "b"):
        st = opt.state[params[name]]
        out[f"exp_avg.{name}"] = st["exp_avg"].clone()
        out[f"exp_avg_sq.{name}"] = st["exp_avg_sq"].clone()
    out["lrs"] = torch.tensor(LRS, dtype=torch.float64)
    out["config"] = torch.tensor([LR, BETAS[0], BETAS[1], EPS, WEIGHT_DECAY], dtype=torch.float64)
    path = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "adamw_golden.safetensors"
    save_file({k: v.contiguous() for k, v in out.items()}, str(path))
    print(f"wrote {len(out)} tensors to {path}")


if __name__ == "__main__":
    main()
