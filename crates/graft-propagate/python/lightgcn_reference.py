"""PyTorch reference of ELMRec's LightGCN random-feature propagation.

Independent of the Rust code: from the raw training interactions it builds
the symmetric normalised adjacency the way the ELMRec authors' code does
(A = [[0, R], [R^T, 0]], D^-1/2 A D^-1/2 with zero-degree rows left empty)
and propagates with torch.sparse.mm, then averages E0..EL.

Input file (safetensors, see st_io.py):
  edges   int64 (E, 2): (user, item) pairs, ids from 0
  sizes   int64 (2,):   n_users, n_items
  e0      float32 (n_users + n_items, d): users first, then items

Commands:
  propagate --input IN --output OUT --layers L [--layout coo|csr] [--combine mean|last]
      writes "out" (float32, the layer mean or the last layer, computed as
      the ELMRec code does) and "out64" (the same in float64) to OUT.
  bench --input IN --layers L --threads T [--repeats R] [--layout coo,csr] [--device cpu|cuda:N]
      times the propagation (adjacency prepared beforehand, as a model
      would keep it; on CUDA, waiting for the kernels) and prints one JSON
      line per layout.

Run with the project venv: .venv/bin/python crates/graft-propagate/python/lightgcn_reference.py ...
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
import torch  # noqa: E402


def normalized_adjacency(edges, n_users, n_items, layout, dtype):
    n = n_users + n_items
    u = edges[:, 0]
    i = edges[:, 1] + n_users
    rows = torch.cat([u, i])
    cols = torch.cat([i, u])
    vals = torch.ones(rows.numel(), dtype=dtype)
    a = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n)).coalesce()
    rowsum = torch.zeros(n, dtype=dtype).index_add_(0, a.indices()[0], a.values())
    rowsum[rowsum == 0] = 1e-9
    d_inv = rowsum.pow(-0.5)
    r, c = a.indices()
    norm = torch.sparse_coo_tensor(a.indices(), d_inv[r] * a.values() * d_inv[c], (n, n)).coalesce()
    if layout == "csr":
        return norm.to_sparse_csr()
    return norm


def propagate(adj, e0, layers, combine):
    ego = e0
    all_layers = [ego]
    for _ in range(layers):
        ego = torch.sparse.mm(adj, ego)
        all_layers.append(ego)
    if combine == "last":
        return ego
    return torch.stack(all_layers, dim=1).mean(dim=1)


def load_input(path):
    t = st_io.load(path)
    n_users, n_items = (int(x) for x in t["sizes"])
    return t["edges"], n_users, n_items, t["e0"]


def cmd_propagate(args):
    edges, n_users, n_items, e0 = load_input(args.input)
    out = {}
    for name, dtype in (("out", torch.float32), ("out64", torch.float64)):
        adj = normalized_adjacency(edges, n_users, n_items, args.layout, dtype)
        with torch.no_grad():
            out[name] = propagate(adj, e0.to(dtype), args.layers, args.combine)
    st_io.save(args.output, out)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    edges, n_users, n_items, e0 = load_input(args.input)
    device = torch.device(args.device)
    e0 = e0.to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for layout in args.layout.split(","):
        adj = normalized_adjacency(edges, n_users, n_items, layout, torch.float32).to(device)
        times = []
        with torch.no_grad():
            propagate(adj, e0, args.layers, "mean")  # warm-up
            sync()
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                propagate(adj, e0, args.layers, "mean")
                sync()
                times.append(time.perf_counter() - t0)
        times.sort()
        print(
            json.dumps(
                {
                    "impl": f"pytorch-{layout}",
                    "median_s": times[len(times) // 2],
                    "min_s": times[0],
                    "repeats": args.repeats,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "nnz": int(adj._nnz()),
                    "n": n_users + n_items,
                    "d": int(e0.shape[1]),
                }
            ),
            flush=True,
        )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("propagate")
    a.add_argument("--input", required=True)
    a.add_argument("--output", required=True)
    a.add_argument("--layers", type=int, required=True)
    a.add_argument("--layout", choices=["coo", "csr"], default="coo")
    a.add_argument("--combine", choices=["mean", "last"], default="mean")
    b = sub.add_parser("bench")
    b.add_argument("--input", required=True)
    b.add_argument("--layers", type=int, required=True)
    b.add_argument("--threads", type=int, required=True)
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--layout", default="coo,csr")
    b.add_argument("--device", default="cpu")
    args = p.parse_args()
    {"propagate": cmd_propagate, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
