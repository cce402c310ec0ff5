"""Draws bench/results.png from bench/results.json: one panel per kind of measurement,
one bar per system, medians of the run."""
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).parent
results = json.loads((HERE / "results.json").read_text())
metrics = {m["id"]: m for m in results["metrics"]}
systems = results["systems"]

PANELS = [
    ("Processing 1,000 jobs (jobs/s, higher is better)",
     [("c=1", "process-c1-p1"), ("c=10", "process-c10-p1"), ("c=50", "process-c50-p1"), ("c=10 ×2 proc", "process-c10-p2")]),
    ("Enqueue 5,000 jobs (jobs/s, higher is better)",
     [("one at a time", "enqueue-single"), ("batches of 500", "enqueue-batch")]),
    ("Pickup latency (ms, lower is better)",
     [("p50 same", "latency-same"), ("p99 same", "latency-same-p99"), ("p50 other", "latency-other"), ("p99 other", "latency-other-p99")]),
    ("Worker CPU per 1,000 jobs (CPU s, lower is better)",
     [("c=1", "process-c1-p1-cpu"), ("c=10", "process-c10-p1-cpu"), ("c=50", "process-c50-p1-cpu"), ("c=10 ×2 proc", "process-c10-p2-cpu")]),
]

fig, axes = plt.subplots(2, 2, figsize=(13, 8))
width = 0.8 / len(systems)
for ax, (title, groups) in zip(axes.flat, PANELS):
    groups = [(label, mid) for label, mid in groups if mid in metrics]
    for i, system in enumerate(systems):
        xs = [g + (i - (len(systems) - 1) / 2) * width for g in range(len(groups))]
        ys = [metrics[mid]["median"].get(system) or 0 for _, mid in groups]
        bars = ax.bar(xs, ys, width, label=system)
        for x, y in zip(xs, ys):
            if y:
                ax.annotate(f"{y:.0f}" if y >= 20 else f"{y:.1f}", (x, y), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
axes.flat[0].legend(fontsize=8)
fig.suptitle(f"monque benchmark, {results['date'][:10]}, server {results['server']}, medians of {results['runs']}", fontsize=11)
fig.tight_layout()
fig.savefig(HERE / "results.png", dpi=90)
print("wrote bench/results.png")
