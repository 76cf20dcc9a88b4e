"""Collects what device/check.sh wrote into one summary.json.

Usage: python3 summary.py OUT_DIR SECONDS
"""

import glob
import json
import os
import re
import statistics
import sys


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def test_counts(log):
    """passed/failed/ignored summed over every `test result:` line."""
    total = {"passed": 0, "failed": 0, "ignored": 0}
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", log):
        for k, v in zip(("passed", "failed", "ignored"), m.groups()):
            total[k] += int(v)
    total["failures"] = re.findall(r"^test (\S+) \.\.\. FAILED", log, re.M)
    return total


def step_times(out, run, drop, **about):
    """Seconds per training step of the run directory OUT/RUN (a glob;
    median of the logged increments, the first DROP dropped), with what
    the run was."""
    logs = glob.glob(os.path.join(out, run, "log.jsonl"))
    if not logs:
        return None
    secs = []
    for line in read(logs[0]).splitlines():
        try:
            r = json.loads(line)
        except ValueError:  # a line cut short by a time limit
            continue
        if "loss" in r:
            secs.append((r["step"], r["seconds"]))
    deltas = [b[1] - a[1] for a, b in zip(secs, secs[1:])][drop:]
    return {
        "steps": len(secs),
        "median_s_per_step": statistics.median(deltas) if deltas else None,
        **about,
    }


def main():
    out, seconds = sys.argv[1], float(sys.argv[2])
    exits = dict(line.split() for line in read(os.path.join(out, "tests.txt")).splitlines() if line.strip())
    tests = {
        os.path.basename(p)[: -len(".log")]: test_counts(read(p))
        for p in sorted(glob.glob(os.path.join(out, "test-*.log")))
    }
    compare = read(os.path.join(out, "compare", "summary.json"))
    summary = {
        "gpu": read(os.path.join(out, "gpu.txt")).strip(),
        "torch": read(os.path.join(out, "torch.txt")).strip(),
        "seconds": seconds,
        "exit_status": exits,
        "cuda_tests": tests,
        "propagation_and_gat": json.loads(compare) if compare else None,
        "elmrec_t5_small_training": step_times(
            out, "elmrec/*", 10, batch=64, backbone="t5-small, bf16 products"
        ),
        "elcorec_smollm2_lora": step_times(
            out,
            "elcorec/smollm2-*",
            5,
            batch=64,
            backbone="SmolLM2-135M architecture, seeded random weights (timing only), "
            "bf16 frozen projections, LoRA r 8, GAT token, RAP prompts K 15",
        ),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: summary[k] for k in ("gpu", "seconds", "exit_status")}, indent=2))


if __name__ == "__main__":
    main()
