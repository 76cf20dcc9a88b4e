"""Python peer of graft's heterogeneous GAT (ELCoRec's expert network).

Reads a batch of per-sample heterogeneous graphs written by
`graft_propagate::gat::bench::export_batch` (or `export_golden`) and either

* times training steps (default): forward in training mode, loss
  sum_k mean(out_k ** 2), backward, AdamW (lr 1e-3, weight decay 0.01) --
  the same step as `gat::bench::train_step_throughput` -- and prints one
  JSON line; or
* with `--check`, loads the weights `w.*` of an `export_golden` file, runs
  the network in evaluation mode and compares with the reference outputs
  `y.*` (exit status 1 if they differ beyond the tolerance).

Implementations (`--impl`):

* `pyg`: PyTorch Geometric, `HeteroConv({rel: GATConv((in_src, in_dst), F,
  heads=H, add_self_loops=False, concat=True)}, aggr="sum")` per layer, the
  PyG counterpart of ELCoRec's DGL `HeteroGraphConv` + `GATConv`.
* `torch`: the same layer in plain PyTorch, written like graft's libtorch
  implementation (gather with index_select, per-destination softmax with a
  scatter_reduce "amax" and index_add, messages scattered with an in-place
  index_add_ into the running sum of the destination type).

File layout (see the Rust docs of `gat::bench`): `{rel}.src`, `{rel}.dst`
(int64 [E]) for rel in user_item, item_user, item_feature, feature_item;
`x.user`, `x.item`, `x.feature` (float32 [N, in]); `counts` (int64 [3]);
`n_graphs` (int64 [1]); optionally `w.layers.{l}.{rel}.{lin_src.weight,
lin_dst.weight, att_src, att_dst, bias}`, `w.config.*` and `y.{type}`.

Exit status: 0 on success, 1 if a check fails, 2 for bad arguments or
files, 3 if `--impl pyg` is asked for without torch_geometric installed.
"""

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import st_io  # noqa: E402

NODE_TYPES = ("user", "item", "feature")
# (name, source type, destination type), in graft's Relation::ALL order.
RELATIONS = (
    ("user_item", "user", "item"),
    ("item_user", "item", "user"),
    ("item_feature", "item", "feature"),
    ("feature_item", "feature", "item"),
)


def parse_layers(text):
    """'8x32,1x32' -> [(8, 32), (1, 32)]."""
    out = []
    for part in text.split(","):
        heads, _, width = part.strip().partition("x")
        if not heads.isdigit() or not width.isdigit() or int(heads) == 0 or int(width) == 0:
            raise argparse.ArgumentTypeError(f"layer {part!r} is not HEADSxCHANNELS")
        out.append((int(heads), int(width)))
    return out


def layer_in_dims(in_dims, layers):
    """Input width per node type of every layer."""
    dims = [dict(zip(NODE_TYPES, in_dims))]
    for heads, width in layers[:-1]:
        dims.append({t: heads * width for t in NODE_TYPES})
    return dims


# ----------------------------------------------------------------- torch


class RelationConv(nn.Module):
    """One relation's GATConv, as graft's libtorch implementation."""

    def __init__(self, in_src, in_dst, heads, width, slope, attn_dropout):
        super().__init__()
        self.heads, self.width = heads, width
        self.slope, self.attn_dropout = slope, attn_dropout
        self.lin_src = nn.Linear(in_src, heads * width, bias=False)
        self.lin_dst = nn.Linear(in_dst, heads * width, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, width))
        self.att_dst = nn.Parameter(torch.empty(heads, width))
        self.bias = nn.Parameter(torch.zeros(heads * width))
        for p in (self.lin_src.weight, self.lin_dst.weight):
            nn.init.xavier_uniform_(p)
        for p in (self.att_src, self.att_dst):
            bound = (6.0 / (heads + width)) ** 0.5
            nn.init.uniform_(p, -bound, bound)

    def forward(self, acc, x_src, x_dst, src, dst):
        h, f = self.heads, self.width
        n_dst = x_dst.shape[0]
        h_src = self.lin_src(x_src).view(-1, h, f)
        el = (h_src * self.att_src).sum(-1)
        # <W_dst x, a_dst> without projecting the destinations to [N, H*F].
        w_att = (self.lin_dst.weight.view(h, f, -1) * self.att_dst.unsqueeze(-1)).sum(1)
        er = x_dst @ w_att.t()
        logits = el.index_select(0, src) + er.index_select(0, dst)
        logits = torch.where(logits > 0, logits, logits * self.slope)
        idx = dst.unsqueeze(1).expand(-1, h)
        top = torch.full((n_dst, h), float("-inf"), dtype=logits.dtype, device=logits.device)
        top = top.scatter_reduce(0, idx, logits.detach(), "amax", include_self=True)
        p = (logits - top.index_select(0, dst)).exp()
        denom = torch.zeros((n_dst, h), dtype=p.dtype, device=p.device).index_add(0, dst, p)
        alpha = p / denom.index_select(0, dst)
        alpha = F.dropout(alpha, self.attn_dropout, self.training)
        messages = (h_src.index_select(0, src) * alpha.unsqueeze(-1)).view(src.numel(), h * f)
        # Scatter into the running sum of the destination type (or a fresh
        # copy of the bias), in place.
        acc = self.bias.unsqueeze(0).repeat(n_dst, 1) if acc is None else acc.add_(self.bias)
        return acc.index_add_(0, dst, messages)


class TorchGat(nn.Module):
    """Plain-PyTorch heterogeneous GAT; state_dict names match graft's
    variable names (`layers.{l}.{rel}.lin_src.weight`, ...)."""

    def __init__(self, in_dims, layers, slope, feat_dropout, attn_dropout, elu=True):
        super().__init__()
        self.feat_dropout = feat_dropout
        self.elu = elu
        self.layers = nn.ModuleList()
        for (heads, width), dims in zip(layers, layer_in_dims(in_dims, layers)):
            self.layers.append(
                nn.ModuleDict(
                    {
                        name: RelationConv(dims[s], dims[d], heads, width, slope, attn_dropout)
                        for name, s, d in RELATIONS
                    }
                )
            )

    def forward(self, x, edges):
        last = len(self.layers) - 1
        for l, layer in enumerate(self.layers):
            if self.training and self.feat_dropout > 0:
                x = {t: F.dropout(v, self.feat_dropout, True) for t, v in x.items()}
            out = {}
            for name, s, d in RELATIONS:
                src, dst = edges[name]
                out[d] = layer[name](out.get(d), x[s], x[d], src, dst)
            x = {t: F.elu(v) for t, v in out.items()} if l < last and self.elu else out
        return x

    def load_graft_weights(self, tensors):
        state = {k[2:]: v for k, v in tensors.items() if k.startswith("w.layers.")}
        self.load_state_dict(state, strict=True)


# ------------------------------------------------------------------- PyG


def build_pyg(in_dims, layers, slope, feat_dropout, attn_dropout, elu=True):
    from torch_geometric.nn import GATConv, HeteroConv

    class PygGat(nn.Module):
        def __init__(self):
            super().__init__()
            self.feat_dropout = feat_dropout
            self.convs = nn.ModuleList()
            for (heads, width), dims in zip(layers, layer_in_dims(in_dims, layers)):
                self.convs.append(
                    HeteroConv(
                        {
                            (s, name, d): GATConv(
                                (dims[s], dims[d]),
                                width,
                                heads=heads,
                                concat=True,
                                negative_slope=slope,
                                dropout=attn_dropout,
                                add_self_loops=False,
                            )
                            for name, s, d in RELATIONS
                        },
                        aggr="sum",
                    )
                )

        def forward(self, x, edge_index):
            last = len(self.convs) - 1
            for l, conv in enumerate(self.convs):
                if self.training and self.feat_dropout > 0:
                    x = {t: F.dropout(v, self.feat_dropout, True) for t, v in x.items()}
                x = conv(x, edge_index)
                if l < last and elu:
                    x = {t: F.elu(v) for t, v in x.items()}
            return x

        def load_graft_weights(self, tensors):
            with torch.no_grad():
                for l, conv in enumerate(self.convs):
                    for name, s, d in RELATIONS:
                        gat = conv.convs[(s, name, d)]
                        base = f"w.layers.{l}.{name}"
                        gat.lin_src.weight.copy_(tensors[f"{base}.lin_src.weight"])
                        gat.lin_dst.weight.copy_(tensors[f"{base}.lin_dst.weight"])
                        gat.att_src.copy_(tensors[f"{base}.att_src"].unsqueeze(0))
                        gat.att_dst.copy_(tensors[f"{base}.att_dst"].unsqueeze(0))
                        gat.bias.copy_(tensors[f"{base}.bias"])

    return PygGat()


# ------------------------------------------------------------------ main


def load_batch(path):
    t = st_io.load(path)
    missing = [
        n
        for n in [f"{r}.{e}" for r, _, _ in RELATIONS for e in ("src", "dst")]
        + [f"x.{k}" for k in NODE_TYPES]
        + ["counts", "n_graphs"]
        if n not in t
    ]
    if missing:
        raise ValueError(f"{path}: missing tensors {missing}")
    counts = t["counts"].tolist()
    for k, n in zip(NODE_TYPES, counts):
        if t[f"x.{k}"].shape[0] != n:
            raise ValueError(f"{path}: x.{k} has {t[f'x.{k}'].shape[0]} rows, counts says {n}")
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", required=True, help="safetensors file from export_batch/export_golden")
    ap.add_argument("--impl", choices=("pyg", "torch"), default="pyg")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--iters", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--layers", type=parse_layers, default=parse_layers("8x32,1x32"), help="default 8x32,1x32")
    ap.add_argument("--negative-slope", type=float, default=0.2)
    ap.add_argument("--feat-dropout", type=float, default=0.0)
    ap.add_argument("--attn-dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--check", action="store_true", help="compare with the y.* outputs of an export_golden file")
    ap.add_argument("--tol", type=float, default=1e-4, help="--check: relative tolerance, absolute tol/10 (default 1e-4)")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--iters must be >= 1, --warmup >= 0, --threads >= 1")

    pyg_version = None
    if args.impl == "pyg":
        try:
            import torch_geometric
        except ImportError:
            print(
                "gat_peer.py: --impl pyg needs torch_geometric; install it with "
                "`pip install torch_geometric` into this interpreter's environment",
                file=sys.stderr,
            )
            return 3
        pyg_version = torch_geometric.__version__

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    try:
        t = load_batch(args.batch)
    except (OSError, ValueError, KeyError) as e:
        print(f"gat_peer.py: {e}", file=sys.stderr)
        return 2
    x = {k: t[f"x.{k}"].to(device) for k in NODE_TYPES}
    edges = {r: (t[f"{r}.src"].to(device), t[f"{r}.dst"].to(device)) for r, _, _ in RELATIONS}
    edge_index = {(s, r, d): torch.stack(edges[r]) for r, s, d in RELATIONS}
    n_graphs = int(t["n_graphs"][0])

    layers, slope, elu = args.layers, args.negative_slope, True
    if args.check:
        if "w.config.layers" not in t or "y.item" not in t:
            print(f"gat_peer.py: {args.batch} has no weights/outputs (write it with export_golden)", file=sys.stderr)
            return 2
        layers = [tuple(r) for r in t["w.config.layers"].tolist()]
        slope = float(t["w.config.negative_slope"][0])
        if "w.config.elu" in t:
            elu = bool(t["w.config.elu"][0])
    in_dims = [x[k].shape[1] for k in NODE_TYPES]
    if args.impl == "pyg":
        model = build_pyg(in_dims, layers, slope, args.feat_dropout, args.attn_dropout, elu)
    else:
        model = TorchGat(in_dims, layers, slope, args.feat_dropout, args.attn_dropout, elu)
    model = model.to(device)

    def run(m):
        return m(x, edge_index) if args.impl == "pyg" else m(x, edges)

    if args.check:
        model.load_graft_weights({k: v.to(device) for k, v in t.items()})
        model.eval()
        with torch.no_grad():
            out = run(model)
        errors = {}
        ok = True
        for k in NODE_TYPES:
            want, got = t[f"y.{k}"].to(device), out[k]
            if tuple(got.shape) != tuple(want.shape):
                errors[k] = f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
                ok = False
                continue
            diff = (got - want).abs()
            errors[k] = diff.max().item() if diff.numel() else 0.0
            # |got - want| <= tol / 10 + tol |want|
            ok = ok and bool((diff <= args.tol / 10 + args.tol * want.abs()).all())
        print(json.dumps({"impl": args.impl, "check": "ok" if ok else "FAILED", "max_abs_error": errors}))
        return 0 if ok else 1

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        out = run(model)
        loss = sum(out[k].square().mean() for k in NODE_TYPES)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    loss = float("nan")
    for _ in range(args.warmup):
        loss = step()
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        loss = step()
    sync()
    seconds = (time.perf_counter() - start) / args.iters
    print(
        json.dumps(
            {
                "impl": args.impl,
                "graphs_per_s": n_graphs / seconds,
                "seconds_per_step": seconds,
                "threads": torch.get_num_threads(),
                "n_graphs": n_graphs,
                "nodes": int(t["counts"].sum()),
                "edges": sum(int(s.numel()) for s, _ in edges.values()),
                "iters": args.iters,
                "warmup": args.warmup,
                "parameters": sum(p.numel() for p in model.parameters()),
                "device": str(device),
                "final_loss": loss,
                "torch": torch.__version__,
                "torch_geometric": pyg_version,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
