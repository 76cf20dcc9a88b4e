"""PyTorch reference for graft-baselines' SASRec (`src/sasrec.rs`).

The module below is the classic block layout of the widely used PyTorch
port of SASRec (pmixer/SASRec.pytorch) written with torch.nn modules
(Embedding, LayerNorm, MultiheadAttention, Conv1d); its state_dict names
are the ones graft's tch implementation uses.

Two commands:

  forward --weights W.safetensors --input I.safetensors --output O.safetensors
      loads graft's weights, runs the forward (eval mode) on the int64
      tensor "seqs" [B, T] of I and writes "features" [B, T, d] to O.

  train --data D.json --output M.json
      trains from scratch on D's train sequences with D's settings (same
      sampling scheme and hyper-parameters as graft's, its own RNG),
      early-stops on validation HR@10 (all items, history dropped) and
      writes the test ranks (direct among the candidates; sequential
      among all items, history dropped) to M.

Used by crates/graft-baselines/tests/sasrec.rs (synthetic data in the test
suite, Amazon Beauty in an ignored test).
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file


class PointWiseFeedForward(torch.nn.Module):
    def __init__(self, d, p):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(d, d, kernel_size=1)
        self.dropout1 = torch.nn.Dropout(p=p)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv1d(d, d, kernel_size=1)
        self.dropout2 = torch.nn.Dropout(p=p)

    def forward(self, x):
        y = self.dropout2(self.conv2(self.relu(self.dropout1(self.conv1(x.transpose(-1, -2))))))
        return y.transpose(-1, -2) + x


class SASRec(torch.nn.Module):
    def __init__(self, n_items, d, blocks, heads, p, max_len):
        super().__init__()
        self.item_emb = torch.nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = torch.nn.Embedding(max_len + 1, d, padding_idx=0)
        self.emb_dropout = torch.nn.Dropout(p=p)
        self.attention_layernorms = torch.nn.ModuleList()
        self.attention_layers = torch.nn.ModuleList()
        self.forward_layernorms = torch.nn.ModuleList()
        self.forward_layers = torch.nn.ModuleList()
        for _ in range(blocks):
            self.attention_layernorms.append(torch.nn.LayerNorm(d, eps=1e-8))
            self.attention_layers.append(torch.nn.MultiheadAttention(d, heads, p))
            self.forward_layernorms.append(torch.nn.LayerNorm(d, eps=1e-8))
            self.forward_layers.append(PointWiseFeedForward(d, p))
        self.last_layernorm = torch.nn.LayerNorm(d, eps=1e-8)
        self.d = d

    def init_weights(self):
        for _, w in self.named_parameters():
            if w.dim() >= 2:
                torch.nn.init.xavier_normal_(w)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
            self.pos_emb.weight[0].zero_()

    def features(self, seqs):
        keep = (seqs != 0).unsqueeze(-1).float()
        x = self.item_emb(seqs) * math.sqrt(self.d)
        t = seqs.shape[1]
        poss = torch.arange(1, t + 1).unsqueeze(0) * (seqs != 0).long()
        x = self.emb_dropout(x + self.pos_emb(poss)) * keep
        causal = ~torch.tril(torch.ones((t, t), dtype=torch.bool))
        for ln1, att, ln2, ff in zip(self.attention_layernorms, self.attention_layers,
                                     self.forward_layernorms, self.forward_layers):
            x = x.transpose(0, 1)
            q = ln1(x)
            out, _ = att(q, x, x, attn_mask=causal, need_weights=False)
            x = (q + out).transpose(0, 1)
            x = ff(ln2(x)) * keep
        return self.last_layernorm(x)

    def score_all(self, seqs):
        return self.features(seqs)[:, -1, :] @ self.item_emb.weight[1:].T


def cmd_forward(a):
    w = load_file(a.weights)
    d = w["item_emb.weight"].shape[1]
    n_items = w["item_emb.weight"].shape[0] - 1
    max_len = w["pos_emb.weight"].shape[0] - 1
    blocks = len([k for k in w if k.endswith("in_proj_weight")])
    m = SASRec(n_items, d, blocks, a.heads, 0.0, max_len)
    m.load_state_dict(w, strict=True)
    m.eval()
    seqs = load_file(a.input)["seqs"].long()
    with torch.no_grad():
        out = m.features(seqs).contiguous()
    save_file({"features": out}, a.output)


def pad(hist, t):
    tail = hist[-t:]
    row = np.zeros(t, dtype=np.int64)
    if tail:
        row[t - len(tail):] = np.asarray(tail, dtype=np.int64) + 1
    return row


def full_rank_dropped(scores, case):
    s = scores.copy()
    pos = s[case["target"]]
    drop = set(case["history"])
    drop.discard(case["target"])
    mask = np.ones(len(s), dtype=bool)
    mask[case["target"]] = False
    if drop:
        mask[list(drop)] = False
    return 1 + int((s[mask] >= pos).sum())


def direct_rank(scores, case):
    pos = scores[case["target"]]
    negs = [scores[c] for c in case["candidates"] if c != case["target"]]
    return 1 + sum(1 for n in negs if n >= pos)


def ranks(model, cases, t):
    model.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(cases), 256):
            chunk = cases[k:k + 256]
            seqs = torch.from_numpy(np.stack([pad(c["history"], t) for c in chunk]))
            scores = model.score_all(seqs).numpy()
            for c, s in zip(chunk, scores):
                out.append({"user": c["user"], "direct": direct_rank(s, c),
                            "sequential_history_dropped": full_rank_dropped(s, c)})
    model.train()
    return out


def cmd_train(a):
    data = json.load(open(a.data))
    c = data["config"]
    torch.set_num_threads(int(a.threads))
    torch.manual_seed(c["seed"])
    rng = np.random.default_rng(c["seed"])
    n_items, t = data["n_items"], c["max_len"]
    train = data["train"]
    users = [u for u, s in enumerate(train) if len(s) >= 2]
    seen = [set(s) for s in train]
    m = SASRec(n_items, c["hidden"], c["blocks"], c["heads"], c["dropout"], t)
    m.init_weights()
    opt = torch.optim.Adam(m.parameters(), lr=c["lr"], betas=(0.9, 0.98))
    bce = torch.nn.BCEWithLogitsLoss()
    best, best_epoch, since, logs = -1.0, 0, 0, []
    best_state = None
    t0 = time.time()
    for epoch in range(1, c["epochs"] + 1):
        te = time.time()
        order = rng.permutation(users)
        losses = []
        for k in range(0, len(order), c["batch"]):
            chunk = order[k:k + c["batch"]]
            inp = np.zeros((len(chunk), t), dtype=np.int64)
            pos = np.zeros_like(inp)
            neg = np.zeros_like(inp)
            for r, u in enumerate(chunk):
                s = train[u][-(t + 1):]
                n = len(s) - 1
                inp[r, t - n:] = np.asarray(s[:-1]) + 1
                pos[r, t - n:] = np.asarray(s[1:]) + 1
                for j in range(t - n, t):
                    while True:
                        x = int(rng.integers(n_items))
                        if x not in seen[u]:
                            break
                    neg[r, j] = x + 1
            inp, pos, neg = map(torch.from_numpy, (inp, pos, neg))
            f = m.features(inp)
            pl = (f * m.item_emb(pos)).sum(-1)
            nl = (f * m.item_emb(neg)).sum(-1)
            idx = pos != 0
            loss = bce(pl[idx], torch.ones_like(pl[idx])) + bce(nl[idx], torch.zeros_like(nl[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        over = c.get("max_seconds") is not None and time.time() - t0 >= c["max_seconds"]
        last = epoch == c["epochs"] or over
        hr = None
        stop = over
        if epoch % c["eval_every"] == 0 or last:
            r = ranks(m, data["valid"], t)
            hr = sum(1 for x in r if x["sequential_history_dropped"] <= 10) / len(r)
            if hr > best:
                best, best_epoch, since = hr, epoch, 0
                best_state = {k: v.detach().clone() for k, v in m.state_dict().items()}
            else:
                since += 1
                if c.get("patience") is not None and since >= c["patience"]:
                    stop = True
        logs.append({"epoch": epoch, "loss": float(np.mean(losses)), "valid_hr10": hr,
                     "seconds": time.time() - te})
        print(json.dumps(logs[-1]), file=sys.stderr)
        if stop:
            break
    if best_state is not None:
        m.load_state_dict(best_state)
    out = {"best_epoch": best_epoch, "best_valid_hr10": best, "epochs": logs,
           "seconds": time.time() - t0, "ranks": ranks(m, data["test"], t),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    json.dump(out, open(a.output, "w"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--weights", required=True)
    f.add_argument("--input", required=True)
    f.add_argument("--output", required=True)
    f.add_argument("--heads", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--threads", default="2")
    a = p.parse_args()
    {"forward": cmd_forward, "train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    main()
