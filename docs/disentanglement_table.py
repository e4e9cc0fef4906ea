"""Prints docs/disentanglement.md's table from the runs docs/disentanglement.sh leaves:
for each model, the mean over its seeds ± the standard error (the seeds' spread / √n) of
the test −ELBO (metrics.jsonl's last test_loss) and of the last disentanglement report in
evals.jsonl. Standard library only.

    python3 docs/disentanglement_table.py RUNS_DIR
"""
import json
import math
import sys
from pathlib import Path

MODELS = [
    ("VAE (β = 1)", "b1"),
    ("β-VAE (β = 4)", "b4"),
    ("β-VAE (β = 16)", "b16"),
    ("β-TCVAE (β = 6)", "tcvae"),
    ("FactorVAE (γ = 35)", "factorvae"),
]
COLUMNS = [
    ("test −ELBO", lambda m, d: m, 3),
    ("MIG", lambda m, d: d["mig"]["mean"], 3),
    ("β-VAE score", lambda m, d: d["beta_vae"]["mean"], 3),
    ("FactorVAE score", lambda m, d: d["factor_vae"]["mean"], 3),
    ("DCI disentanglement", lambda m, d: d["dci"]["disentanglement"]["mean"], 3),
    ("DCI completeness", lambda m, d: d["dci"]["completeness"]["mean"], 3),
    ("DCI informativeness", lambda m, d: d["dci"]["informativeness"]["mean"], 3),
]


def last_line(path, keep):
    lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    return [l for l in lines if keep(l)][-1]


def mean_se(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return m, sd / math.sqrt(len(xs))


runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/disentanglement")
print("| model | seeds | " + " | ".join(c[0] for c in COLUMNS) + " |")
print("|---|---|" + "---|" * len(COLUMNS))
per_seed = []
for label, prefix in MODELS:
    rows = []
    for dir in sorted(runs.glob(prefix + "-s*")):
        if not (dir / "evals.jsonl").exists():
            continue
        metrics = last_line(dir / "metrics.jsonl", lambda l: "test_loss" in l)["test_loss"]
        report = last_line(dir / "evals.jsonl", lambda l: l.get("kind") == "disentanglement")
        rows.append((dir.name.split("-s")[-1], [c[1](metrics, report) for c in COLUMNS]))
    if not rows:
        continue
    cells = []
    for j, (_, _, digits) in enumerate(COLUMNS):
        m, se = mean_se([r[1][j] for r in rows])
        cells.append(f"{m:.{digits}f} ± {se:.{digits}f}")
    print(f"| {label} | {','.join(r[0] for r in rows)} | " + " | ".join(cells) + " |")
    per_seed.append((label, rows))
print()
for label, rows in per_seed:
    print(label + ": " + "; ".join(
        f"seed {s}: MIG {v[1]:.3f}, DCI {v[4]:.3f}/{v[5]:.3f}/{v[6]:.3f}" for s, v in rows))
