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

# (title, [(group label, metric id)], log scale): the peers differ by up to 100×, so
# throughput and latency are drawn on a log scale.
PANELS = [
    ("Processing 1,000 jobs (jobs/s, higher is better, log)",
     [("c=1", "process-c1-p1"), ("c=10", "process-c10-p1"), ("c=50", "process-c50-p1"), ("c=10 ×2 proc", "process-c10-p2")], True),
    ("Enqueue 5,000 jobs (jobs/s, higher is better)",
     [("one at a time", "enqueue-single"), ("batches of 500", "enqueue-batch")], False),
    ("Pickup latency, 20 jobs/s (ms, lower is better, log)",
     [("p50 same", "latency-50ms-same"), ("p99 same", "latency-50ms-same-p99"), ("p50 other", "latency-50ms-other"), ("p99 other", "latency-50ms-other-p99")], True),
    ("Pickup latency, 1 job per 500 ms (ms, lower is better, log)",
     [("p50 same", "latency-500ms-same"), ("p99 same", "latency-500ms-same-p99"), ("p50 other", "latency-500ms-other"), ("p99 other", "latency-500ms-other-p99")], True),
    ("Worker CPU per 1,000 jobs (CPU s, lower is better)",
     [("c=1", "process-c1-p1-cpu"), ("c=10", "process-c10-p1-cpu"), ("c=50", "process-c50-p1-cpu"), ("c=10 ×2 proc", "process-c10-p2-cpu")], False),
    ("Round trips per job (lower is better)",
     [("c=1", "roundtrips-c1"), ("c=50", "roundtrips-c50")], False),
]

fig, axes = plt.subplots(3, 2, figsize=(13, 12))
width = 0.8 / len(systems)
for ax, (title, groups, log) in zip(axes.flat, PANELS):
    groups = [(label, mid) for label, mid in groups if mid in metrics]
    for i, system in enumerate(systems):
        xs = [g + (i - (len(systems) - 1) / 2) * width for g in range(len(groups))]
        ys = [metrics[mid]["median"].get(system) or 0 for _, mid in groups]
        ax.bar(xs, ys, width, label=system)
        for x, y in zip(xs, ys):
            if y:
                ax.annotate(f"{y:.0f}" if y >= 20 else f"{y:.1f}" if y >= 1 else f"{y:.2f}", (x, y), ha="center", va="bottom", fontsize=6)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
axes.flat[0].legend(fontsize=8)
fig.suptitle(f"monque benchmark, {results['date'][:10]}, server {results['server']}, medians of {results['runs']}", fontsize=11)
fig.tight_layout()
fig.savefig(HERE / "results.png", dpi=90)
print("wrote bench/results.png")
