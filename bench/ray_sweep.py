"""Wall time of one small sweep (4 runs of digits/logreg) on 2 local worker threads and on a 2-CPU local
Ray instance (2 tasks at once), in the same process run; prints both and their ratio.

Ray's time includes starting its worker processes and importing TensorFlow in each (not the
instance's own start-up, measured separately). Run: .venv/bin/python bench/ray_sweep.py [EPOCHS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpcore.config import DPConfig  # noqa: E402
from dpcore.runs import sweeps  # noqa: E402
from dpcore.runs.jobs import JobRunner  # noqa: E402
from dpcore.runs.store import RunStore  # noqa: E402

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
SPEC = sweeps.SweepSpec(
    base=DPConfig(dataset="digits", model="logreg", batch_size=64, epochs=EPOCHS),
    knobs=(("noise_multiplier", (0.8, 1.1, 1.5, 2.0)),),
)


def timed_sweep(backend) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        runner = JobRunner(store=RunStore(Path(folder) / "runs.sqlite3"), workers=2, backend=backend)
        start = time.perf_counter()
        started = sweeps.start(runner, SPEC, owner="bench")
        runner.wait(started.run_ids)
        seconds = time.perf_counter() - start
        states = [runner.get(i).state for i in started.run_ids]
        runner.shutdown()
    return seconds, states


def main() -> None:
    import ray

    from dpcore.runs.ray_backend import RayBackend

    local, local_states = timed_sweep(None)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    try:
        on_ray, ray_states = timed_sweep(RayBackend(cpus_per_run=1))
    finally:
        ray.shutdown()
    print(f"sweep: 4 runs x {EPOCHS} epochs of digits/logreg, 2 at a time")
    print(f"local threads: {local:.1f} s ({', '.join(local_states)})")
    print(f"Ray, 2 local workers: {on_ray:.1f} s ({', '.join(ray_states)}); Ray start-up {ray_start:.1f} s more")
    print(f"speed-up of Ray over local threads: {local / on_ray:.2f}x")


if __name__ == "__main__":
    main()
