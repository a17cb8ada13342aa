"""The Ray backend on a real local Ray instance: a tiny sweep streams its epochs into the store, a
sweep is cancelled as a whole, and a killed worker leaves its run interrupted with its epochs kept."""

from __future__ import annotations

import os
import signal

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray==2.52.1', in requirements-dev.txt)")

from dpcore.config import DPConfig  # noqa: E402
from dpcore.privacy import accounting  # noqa: E402
from dpcore.runs import sweeps  # noqa: E402
from dpcore.runs.jobs import JobRunner  # noqa: E402
from dpcore.runs.ray_backend import RayBackend  # noqa: E402
from dpcore.runs.store import RunStore  # noqa: E402
from tests.conftest import wait_until  # noqa: E402

TINY = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=2, max_train_examples=128)
LONG = DPConfig(dataset="digits", model="logreg", batch_size=32, epochs=300)


@pytest.mark.timeout(240)
def test_cli_sweep_on_ray_starts_a_local_instance_and_stops_it_after(tmp_path, capsys):
    from dpcore.cli import main

    base = tmp_path / "base.json"
    base.write_text(TINY.to_json(), encoding="utf-8")
    store_path = tmp_path / "runs.sqlite3"
    assert not ray.is_initialized()
    status = main(
        [
            "sweep",
            "--config",
            str(base),
            "--grid",
            "noise_multiplier=0.8,1.5",
            "--backend",
            "ray",
            "--workers",
            "2",
            "--store",
            str(store_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert not ray.is_initialized()  # the instance it started is stopped
    runs = RunStore(store_path).list_runs()
    assert [r.status for r in runs] == ["completed", "completed"] and all(len(r.epochs) == 2 for r in runs)
    assert out.splitlines()[-1].startswith("selection: single run ε")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.timeout(240)
def test_a_sweep_on_ray_streams_epochs_cancels_and_survives_a_killed_worker(local_ray, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    backend = RayBackend(cpus_per_run=1)
    runner = JobRunner(store=store, workers=2, backend=backend)
    try:
        small = sweeps.start(runner, sweeps.SweepSpec(base=TINY, knobs=(("noise_multiplier", (0.8, 1.5)),)), owner="me")
        assert runner.wait(small.run_ids, timeout=180)
        for run_id, point in zip(small.run_ids, small.points):
            run = store.get_run(run_id)
            assert run.status == "completed" and [e.epoch for e in run.epochs] == [1, 2]
            assert run.epsilon == pytest.approx(accounting.epsilon_for_config(point.config, n=128))
            assert store.load_weights(run_id) is not None

        long = sweeps.start(runner, sweeps.SweepSpec(base=LONG, knobs=(("noise_multiplier", (0.8, 1.5)),)), owner="me")
        # Both run on Ray at once, and their epochs reach this process's store while they train.
        wait_until(
            lambda: all(len(store.get_run(i).epochs) >= 1 for i in long.run_ids),
            what="a first epoch of every long run",
            timeout=120.0,
        )
        pids = backend.worker_pids()
        assert len(pids) == 2 and os.getpid() not in pids
        os.kill(pids[0], signal.SIGKILL)
        wait_until(
            lambda: any(runner.get(i).state == "interrupted" for i in long.run_ids),
            what="an interrupted run",
            timeout=120.0,
        )
        assert sweeps.cancel(runner, long.sweep_id) == 1
        assert runner.wait(long.run_ids, timeout=120)
        states = {runner.get(i).state: store.get_run(i) for i in long.run_ids}
        assert set(states) == {"interrupted", "cancelled"}
        lost, cancelled = states["interrupted"], states["cancelled"]
        assert "Ray worker" in lost.error and lost.status == "interrupted" and len(lost.epochs) >= 1
        assert len(cancelled.epochs) >= 1 and len(cancelled.epochs) < LONG.epochs
        assert lost.epsilon == pytest.approx(
            accounting.epsilon_for_config(
                lost.config.replace(epochs=len(lost.epochs)), n=store.get_run(lost.id).n_train or 1437
            ),
            rel=1e-6,
        )
    finally:
        runner.shutdown()


def test_without_ray_installed_the_backend_says_how_to_get_it(monkeypatch):
    import builtins

    from dpcore.runs.ray_backend import RayBackendError, import_ray

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RayBackendError, match="ray==2.52.1"):
        import_ray()
