"""Single process vs a local Ray: seconds per part and peak memory per process, for several N.

Each (N, mode) runs in a fresh subprocess, so the driver's peak resident memory is its own; in
Ray mode the peak of every Ray worker process (VmHWM) is read before Ray shuts down. From the
measured cost of one mutual-scoring block it also prints an estimate for N = 100 000.

    .venv/bin/python bench/bench_cluster.py                     # N = 200, 500, 1000 at 64 px
    .venv/bin/python bench/bench_cluster.py --sizes 200 --workers 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, dataset_of_size, peak_rss_mib


def _workers_peak_mib(root: int) -> float:
    """Largest peak RSS (VmHWM) among the Ray worker processes below ``root``, in MiB."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - below
        below |= frontier
    peak = 0.0
    for pid in below:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                name = cmd.read()
            # workers rename themselves "ray::<task or actor>"; Ray's own agents are not ours
            if not name.startswith(b"ray::") or b"Agent" in name:
                continue
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


class _PeakWatch(threading.Thread):
    """Samples the workers' peak every half second: actors end with their stage."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.stop = 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.peak = max(self.peak, _workers_peak_mib(os.getpid()))


def _block_seconds(features, chunk_mib: int) -> tuple[float, int]:
    """Seconds of one off-diagonal block of the run's tile size (median of 3), and the tile."""
    import torch

    from engine.method import mutual_scoring

    torch.set_num_threads(1)  # as in a Ray worker (OMP_NUM_THREADS=1 per CPU)
    n, patches, _ = features.shape
    tile = min(mutual_scoring.tile_size(patches, chunk_mib, n), n // 2)
    a, b = features[:tile], features[tile : 2 * tile]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        mutual_scoring.block_nearest(a, b, same=False, unit_norm=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[1], tile


def run_one(args: argparse.Namespace) -> dict:
    """Score N synthetic parts once in this process or on a local Ray (the child process)."""
    from engine.config import MuscConfig
    from engine.progress import run_to_completion
    from engine.session.session import InspectionSession
    from engine.session.stages import Stage

    backend = None
    if args.mode == "ray":
        import ray

        from engine.cluster.ray_compute import RayCompute

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        backend = RayCompute()
        watch = _PeakWatch()
        watch.start()
    with tempfile.TemporaryDirectory() as scratch:
        dataset = dataset_of_size("synthetic", args.n, Path(scratch))
        config = MuscConfig(modality="2d", backbone="efficientnet_lite0", device="cpu",
                            image_size=args.image_size, precision="fp32")  # fmt: skip
        session = InspectionSession(dataset, config, distances=backend)
        started = time.perf_counter()
        run_to_completion(session.run())
        total = time.perf_counter() - started
    workers_mib = 0.0
    if args.mode == "ray":
        watch.stop.set()
        watch.join()
        workers_mib = max(watch.peak, _workers_peak_mib(os.getpid()))
        ray.shutdown()
    layers = session._cache[Stage.AGGREGATE_2D]
    block_s, tile = _block_seconds(layers[0], config.chunk_mib)
    return {
        "n": args.n, "mode": args.mode, "total": total, "driver_mib": peak_rss_mib(),
        "workers_mib": workers_mib, "subsets": len(session._cache[Stage.SCORE_2D]),
        "extract": session.timings.get("extract 2D", 0.0),
        "scoring": session.timings.get("mutual scoring 2D", 0.0),
        "block_s": block_s, "tile": tile, "layers": len(layers),
        "patches": int(layers[0].shape[1]), "channels": int(layers[0].shape[2]),
    }  # fmt: skip


def estimate(row: dict, n: int, nodes: int, workers: int, subsets: int) -> str:
    """N parts on ``nodes`` x ``workers`` from one measured block (CPU cost; see README)."""
    t, layers, patches = row["tile"], row["layers"], row["patches"]
    per_subset = math.ceil(n / subsets)
    tiles = math.ceil(per_subset / t)
    blocks = subsets * layers * tiles * (tiles + 1) // 2
    cpu_hours = blocks * row["block_s"] / 3600
    wall_min = cpu_hours * 60 / (nodes * workers)
    feature_gib = n * layers * patches * row["channels"] * 4 / 2**30
    table_gib = per_subset**2 * patches * 4 / 2**30
    return (
        f"N={n}, g={subsets}: {blocks} blocks x {row['block_s']:.3f} s = {cpu_hours:.1f} "
        f"worker-hours, {wall_min:.1f} min on {nodes} nodes x {workers} workers; features "
        f"{feature_gib:.1f} GiB (each tile fetched at most once per node); the (n, L, n) table "
        f"of one subset and layer on the driver: {table_gib:.2f} GiB"
    )


def main() -> None:
    """Parse options, run each (N, mode) in a subprocess, print the table and the estimate."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("local", "ray"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.n = args.child
        print(json.dumps(run_one(args)))
        return
    import subprocess

    print(f"bench_cluster: efficientnet_lite0 at {args.image_size} px, 2D, CPU, "
          f"local Ray with {args.workers} workers")  # fmt: skip
    print("N | mode | s/part | extract s/part | scoring s/part | g | "
          "driver peak MiB | worker peak MiB")  # fmt: skip
    rows = []
    for n in args.sizes:
        for mode in ("local", "ray"):
            command = [sys.executable, __file__, "--child", str(n), "--mode", mode, "--image-size",
                       str(args.image_size), "--workers", str(args.workers)]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{n} | {mode} | {row['total'] / n:.3f} | {row['extract'] / n:.3f} | "
                  f"{row['scoring'] / n:.3f} | {row['subsets']} | {row['driver_mib']:.0f} | "
                  f"{row['workers_mib']:.0f}", flush=True)  # fmt: skip
    last = rows[-1]
    print(f"one block ({last['tile']}x{last['tile']} parts, L={last['patches']}, "
          f"C={last['channels']}): {last['block_s']:.3f} s on one CPU worker")  # fmt: skip
    for nodes, subsets in ((8, 1), (8, 100)):
        print(estimate(last, 100_000, nodes, args.workers, subsets))


if __name__ == "__main__":
    main()
