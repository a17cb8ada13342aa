"""ScatterNet features for all of Fashion-MNIST: time to compute and cache them, time to read them back.

Runs dpcore.data.scatter.features_dataset on the 60,000 training and 10,000 test images twice: first
with an empty cache (the transform, then the checksummed write), then again (a cache hit: hashing
the pixels, reading the file, checking its checksum). Prints wall and CPU time, images per second,
the cache's size on disk, peak resident memory, and the hit/miss time ratio.

    python bench/scatter_features.py [--cache DIR] [--json]

Without --cache the features go to a temporary folder that is removed at the end; with it they stay
there (point it at $DPEXPLORER_CACHE to keep them for training).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(run) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", metavar="DIR", help="cache folder to fill and keep (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    from dpcore.config import DPConfig
    from dpcore.data import datasets, scatter

    folder = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="dpx-scatter-bench-"))
    try:
        dataset = datasets.load(DPConfig(dataset="fashion_mnist"))
        images = len(dataset.x_train) + len(dataset.x_test)
        for path in folder.glob("fashion_mnist-*.scatter"):
            path.unlink()  # a true miss, even in a kept folder
        miss, miss_wall, miss_cpu = _timed(lambda: scatter.features_dataset(dataset, directory=folder))
        size = sum(p.stat().st_size for p in folder.glob("fashion_mnist-*.scatter"))
        del miss
        hit, hit_wall, hit_cpu = _timed(lambda: scatter.features_dataset(dataset, directory=folder))
        shape = hit.x_train.shape[1:]
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        if not args.cache:
            shutil.rmtree(folder, ignore_errors=True)
    report = {
        "images": images,
        "feature_shape": list(shape),
        "miss_wall_s": miss_wall,
        "miss_cpu_s": miss_cpu,
        "images_per_s": images / miss_wall,
        "hit_wall_s": hit_wall,
        "hit_cpu_s": hit_cpu,
        "hit_over_miss": hit_wall / miss_wall,
        "cache_bytes": size,
        "peak_rss_mib": peak_mib,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"Fashion-MNIST, {images:,} images -> features {tuple(shape)} float32 "
        f"(load average {report['load_average']:.1f} on {report['cpus']} CPUs)"
    )
    print(
        f"  compute + write (miss): {miss_wall:7.1f} s wall, {miss_cpu:7.1f} s CPU, "
        f"{report['images_per_s']:,.0f} images/s"
    )
    print(
        f"  read + verify (hit):    {hit_wall:7.1f} s wall, {hit_cpu:7.1f} s CPU "
        f"({report['hit_over_miss']:.3f} of a miss)"
    )
    print(f"  cache on disk: {size / 2**20:,.0f} MiB; peak resident memory {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
