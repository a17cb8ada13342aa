"""The DP-SGD training loop: sampling that matches the accountant, privatised steps, metrics, cancel.

``train(config)`` loads the data, builds the model and takes exactly ``events.dp_steps`` steps,
ending epochs at ``events.epoch_end_steps``, so that the ε reported after each epoch (from
``accounting.epsilon_curve_for_config``) is the ε of what was done. Poisson sampling draws each
example independently with probability q = batch_size / n and normalises by the expected batch
size; shuffle sampling takes fixed-size batches from a shuffled epoch. A non-private baseline
(``config.private`` False) takes the plain gradient of the mean loss and reports ε = ∞.

Step t adds noise of multiplier ``accounting.noise_schedule_values(config, n=n)[t]``, the values the
accountant composed (raised by dpcore.privacy.noise's split when clipping adaptively, see
dpcore.dpsgd.adaptive_clip). Before each epoch the trainer asks the accountant whether that epoch
keeps ε within ``epsilon_budget``; if not, the run ends with status "budget_reached".

With ``weight_averaging_decay`` set, the weights evaluated after each epoch and kept at the end are
an exponential moving average of every step's weights (``WeightAverage``): post-processing of the
released iterates, which costs no ε.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import tensorflow as tf

from dpcore import model_specs
from dpcore.data import datasets, scatter, types
from dpcore.dpsgd import adaptive_clip, models, privatize
from dpcore.errors import describe_exception
from dpcore.privacy import accounting, events, noise
from dpcore.results import FINISHED_STATUSES, EpochMetrics, Progress, TrainResult  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from dpcore.config import DPConfig

EVAL_BATCH = 1000
PROGRESS_INTERVAL_S = 0.5


# -- sampling ------------------------------------------------------------------------------------


def batch_indices(*, n: int, batch_size: int, epochs: int, sampling: str, seed: int) -> Iterator[np.ndarray]:
    """The index arrays of every step, exactly ``events.dp_steps`` of them, in order.

    Poisson: each example is in a step's batch independently with probability q = batch_size / n;
    the batch size is drawn from Binomial(n, q) and its members uniformly without replacement,
    which is the same distribution. Shuffle: each epoch is a fresh permutation cut into batches of
    ``batch_size`` (the last one may be smaller).
    """
    rng = np.random.default_rng(seed)
    if sampling == "poisson":
        q = batch_size / n
        steps = events.dp_steps(n=n, batch_size=batch_size, epochs=epochs, sampling=sampling)
        for _ in range(steps):
            size = int(rng.binomial(n, q))
            yield np.sort(rng.choice(n, size=size, replace=False)).astype(np.int32)
    elif sampling == "shuffle":
        for _ in range(epochs):
            order = rng.permutation(n).astype(np.int32)
            for start in range(0, n, batch_size):
                yield order[start : start + batch_size]
    else:
        raise ValueError(f"unknown sampling {sampling!r}")


def randomness_seed(config: DPConfig) -> int:
    """The seed of a run's sampling, dropout and noise: the config's seed, or in secure mode a secret one.

    A known seed lets anyone recompute the noise (and the batches), which undoes the privacy of a
    released model; secure mode takes 62 bits from the operating system's secure source and keeps
    them nowhere.
    """
    return secrets.randbits(62) if config.secure_mode else config.seed


def make_optimizer(config: DPConfig) -> tf.keras.optimizers.legacy.Optimizer:
    """The base optimizer that applies the privatised gradient: SGD, momentum (DP-Momentum) or Adam (DP-Adam)."""
    if config.optimizer == "sgd":
        return tf.keras.optimizers.legacy.SGD(learning_rate=config.learning_rate)
    if config.optimizer == "momentum":
        return tf.keras.optimizers.legacy.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
    if config.optimizer == "adam":
        return tf.keras.optimizers.legacy.Adam(learning_rate=config.learning_rate)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


# -- the run ---------------------------------------------------------------------------------------


def train(
    config: DPConfig,
    *,
    on_epoch: Optional[Callable[[EpochMetrics], None]] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    stop_event: Optional[threading.Event] = None,
    on_weights: Optional[Callable[[list[np.ndarray]], None]] = None,
    dataset: Optional[types.Dataset] = None,
) -> TrainResult:
    """Train ``config`` to the end, or until ``stop_event`` is set; never raises for a failed run.

    ``on_progress`` first hears phase "preparing" (loading the data, building the model, tracing its
    step unless an earlier run of the same ``StepKey`` left one), then "training" from the first step on.
    ``on_weights`` receives the final weights of a run that finished (completed, or stopped by its ε budget), to
    keep the model with the run;
    ``dataset`` replaces the one ``config`` names (the canary audit trains on a modified copy), and ε
    is then accounted for its size.
    """
    started = time.perf_counter()
    run = _Run(config, dataset=dataset)
    failed = True
    try:
        run.execute(on_epoch=on_epoch, on_progress=on_progress, stop_event=stop_event)
        status, error = run.status, None
        if on_weights is not None and run.status in FINISHED_STATUSES:
            on_weights(run.weights())
        failed = False
    except Exception as exc:  # noqa: BLE001 - a failed run is a result, with its message
        status, error = "failed", describe_exception(exc)
    finally:
        run.release(reusable=not failed)
    return TrainResult(
        status=status,
        error=error,
        config=config,
        epochs=tuple(run.epochs),
        examples_per_second=run.examples_per_second(),
        seconds=time.perf_counter() - started,
        n_train=run.n_train,
        note=run.note if status == "budget_reached" else None,
    )


class _Run:
    """The state of one training run; ``execute`` fills ``epochs`` as it goes."""

    def __init__(self, config: DPConfig, *, dataset: Optional[types.Dataset] = None) -> None:
        self.config = config
        self.dataset = dataset
        self.traced: Optional[_TracedStep] = None
        self.epochs: list[EpochMetrics] = []
        self.status = "completed"
        self.note: Optional[str] = None
        self.n_train = 0
        # Throughput counts steps after the first, whose time may include graph tracing.
        self._timed_examples = 0
        self._timed_seconds = 0.0

    def examples_per_second(self) -> float:
        return self._timed_examples / self._timed_seconds if self._timed_seconds > 0 else 0.0

    def weights(self) -> list[np.ndarray]:
        """The model's weights as numpy arrays, in ``model.get_weights()`` order: the moving average
        when the config averages weights, else the last step's."""
        if self.traced is None:
            raise RuntimeError("the model's weights are known only after execute() has built it")
        with self.traced.evaluated_weights():
            return [np.array(w) for w in self.traced.model.get_weights()]

    def release(self, *, reusable: bool) -> None:
        """Give the traced step back to the pool for the next run (dropped after a run that raised)."""
        traced, self.traced = self.traced, None
        if traced is not None and reusable:
            STEP_POOL.check_in(traced)

    def _check_out(self, dataset: types.Dataset, features: types.Dataset) -> _TracedStep:
        """A traced step for this run, reset to the weights a fresh model of this config would have."""
        config = self.config
        key = StepKey.of(config, dataset)

        def build() -> Any:
            return models.build(config, input_shape=dataset.info.input_shape, num_classes=dataset.info.num_classes)

        traced = STEP_POOL.check_out(key)
        if traced is None:
            traced = _TracedStep(key, build(), config, dataset=features)
            traced.start_run(config, None)
        else:
            traced.start_run(config, build().get_weights())
        return traced

    def execute(
        self,
        *,
        on_epoch: Optional[Callable[[EpochMetrics], None]],
        on_progress: Optional[Callable[[Progress], None]],
        stop_event: Optional[threading.Event],
    ) -> None:
        config = self.config
        if on_progress is not None:
            on_progress(Progress(step=0, total_steps=0, epoch=0, fraction=0.0, phase="preparing"))
        dataset = self.dataset if self.dataset is not None else datasets.load(config)
        n = self.n_train = int(dataset.x_train.shape[0])
        config.check_dataset_size(n)
        model_specs.check_pair(config.model, dataset.info.input_shape)
        ends = events.epoch_end_steps(n=n, batch_size=config.batch_size, epochs=config.epochs, sampling=config.sampling)
        epsilons = accounting.epsilon_curve_for_config(config, n=n)
        sigmas = accounting.noise_schedule_values(config, n=n)
        gradient_sigmas = _gradient_noise_multipliers(config, sigmas)
        # ScatterNet: fixed, per-example features (no privacy cost), computed once and cached, not per step.
        features = scatter.features_dataset(dataset) if config.model in scatter.SCATTERNET_MODELS else dataset
        self.traced = self._check_out(dataset, features)
        dataset = features
        seed = randomness_seed(config)
        step = _RunSteps(config, self.traced, dataset, seed=seed)

        planned = accounting.epochs_within_budget(config, n=n)
        total = ends[planned - 1] if planned else 1  # the progress bar counts the steps the budget allows
        batches = batch_indices(
            n=n, batch_size=config.batch_size, epochs=config.epochs, sampling=config.sampling, seed=seed
        )
        done = 0
        last_progress = -math.inf  # the first step reports at once: the preparing phase is over
        for epoch, end in enumerate(ends, start=1):
            if config.private and not accounting.budget_allows(config, n=n, epochs=epoch):
                self.status = "budget_reached"
                self.note = (
                    f"stopped after epoch {epoch - 1} of {config.epochs}: epoch {epoch} would bring ε "
                    f"to {epsilons[epoch - 1]:.4g}, above the budget {config.epsilon_budget:g}"
                )
                return
            epoch_started = time.perf_counter()
            seen = 0
            first_step = done
            clip_norms = []
            while done < end:
                if stop_event is not None and stop_event.is_set():
                    self.status = "cancelled"
                    return
                indices = next(batches)
                t0 = time.perf_counter()
                clip_norms.append(step(indices, done, gradient_sigmas[done] if config.private else 0.0))
                if done > 0:
                    self._timed_seconds += time.perf_counter() - t0
                    self._timed_examples += len(indices)
                seen += len(indices)
                done += 1
                now = time.perf_counter()
                if on_progress is not None and now - last_progress >= PROGRESS_INTERVAL_S:
                    last_progress = now
                    on_progress(_progress(done, total, epoch=epoch, epoch_start=first_step, epoch_end=end))
            loss_sum, correct = step.take_train_totals()
            with self.traced.evaluated_weights():
                test_loss, test_accuracy = step.evaluate(dataset.x_test, dataset.y_test)
                if dataset.x_validation is None:
                    validation_loss, validation_accuracy = math.nan, math.nan
                else:
                    assert dataset.y_validation is not None  # a split holds out validation rows with their labels
                    validation_loss, validation_accuracy = step.evaluate(dataset.x_validation, dataset.y_validation)
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=loss_sum / seen if seen else math.nan,
                train_accuracy=correct / seen if seen else math.nan,
                test_loss=test_loss,
                test_accuracy=test_accuracy,
                epsilon=epsilons[epoch - 1] if config.private else math.inf,
                seconds=time.perf_counter() - epoch_started,
                examples=seen,
                validation_loss=validation_loss,
                validation_accuracy=validation_accuracy,
                noise_multipliers=tuple(sigmas[first_step:done]),
                clip_norms=step.clip_norms_of(clip_norms),
            )
            self.epochs.append(metrics)
            if on_progress is not None:
                on_progress(_progress(done, total, epoch=epoch, epoch_start=first_step, epoch_end=end))
            if on_epoch is not None:
                on_epoch(metrics)


def _progress(done: int, total: int, *, epoch: int, epoch_start: int, epoch_end: int) -> Progress:
    """Where a run stands after ``done`` of its ``total`` steps, within its epoch of steps [epoch_start, epoch_end)."""
    return Progress(
        step=done,
        total_steps=total,
        epoch=epoch,
        fraction=min(1.0, done / total),
        epoch_step=done - epoch_start,
        epoch_steps=epoch_end - epoch_start,
    )


def _gradient_noise_multipliers(config: DPConfig, sigmas: tuple[float, ...]) -> tuple[float, ...]:
    """The gradient's noise multiplier per step: σ_t, raised by the noise split under adaptive clipping."""
    if not (config.private and config.adaptive_clipping):
        return sigmas
    return tuple(
        noise.noise_split(
            noise_multiplier=sigma, count_noise_multiplier=config.count_noise_multiplier
        ).gradient_noise_multiplier
        for sigma in sigmas
    )


# -- traced steps, reused across runs ---------------------------------------------------------------

# Idle traced steps kept for later runs (the least recently used go first): each holds a small model,
# its optimizer and two traced graphs.
STEP_POOL_SIZE = 6
# Training examples of the run that ``warm_up`` trains to trace a config's step.
WARM_UP_EXAMPLES = 64


class WeightAverage:
    """An exponential moving average of a model's trainable variables, updated after every step.

    After t updates the average is (1 − d) Σ_s d^(t−s) w_s / (1 − d^t): the zero start's bias is
    divided out (as Adam does), so early averages are not pulled towards zero and no warm-up is
    needed. It reads only the weights the steps released, so it is post-processing. The decay is a
    variable, so a traced step that updates it serves runs of any decay (``start``).
    """

    def __init__(self, variables: list[tf.Variable]) -> None:
        self.variables = variables
        self.decay = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self._sums = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._updates = tf.Variable(0.0, dtype=tf.float64, trainable=False)

    def start(self, *, decay: float) -> None:
        """Begin a run's average: no updates yet, this run's decay."""
        self.decay.assign(float(decay))
        for total in self._sums:
            total.assign(tf.zeros_like(total))
        self._updates.assign(0.0)

    def update(self) -> None:
        """Fold the variables' current values in (inside the compiled step)."""
        decay = tf.identity(self.decay)
        for total, variable in zip(self._sums, self.variables):
            total.assign(decay * total + (1.0 - decay) * variable)
        self._updates.assign_add(1.0)

    def values(self) -> list[tf.Tensor]:
        """The bias-corrected average of each variable (the variables themselves before any update)."""
        if float(self._updates.numpy()) == 0.0:
            return [tf.identity(v) for v in self.variables]
        correction = tf.cast(1.0 - tf.pow(tf.cast(self.decay, tf.float64), self._updates), tf.float32)
        return [total / correction for total in self._sums]

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The variables hold the average inside the block and their own values again after it."""
        current = [tf.identity(v) for v in self.variables]
        for variable, value in zip(self.variables, self.values()):
            variable.assign(value)
        try:
            yield
        finally:
            for variable, value in zip(self.variables, current):
                variable.assign(value)


@dataclass(frozen=True)
class StepKey:
    """Everything that shapes a traced training step's graph: runs with equal keys can share one trace.

    What else varies between runs (initial weights, data, seed, learning rate, momentum, clip norm,
    σ per step, the expected batch size) reaches the graph as variables or arguments, so it never
    retraces. ``adaptive`` holds adaptive clipping's update rule and constants (None when the clip
    norm is fixed); ``momentum_slots`` whether SGD keeps a velocity (Keras builds no slots for 0);
    ``averaging`` whether the step updates a moving average of the weights (its decay is a variable);
    ``parts`` how many slices a DP step computes its clipped sum in (``model_specs.step_parts``).
    """

    model: str
    activation: str
    input_shape: tuple[int, ...]
    num_classes: int
    x_dtype: str
    y_dtype: str
    optimizer: str
    momentum_slots: bool
    private: bool
    sampling: str
    adaptive: Optional[tuple[str, float, float, float]]
    averaging: bool = False
    parts: int = 1

    @classmethod
    def of(cls, config: DPConfig, dataset: types.Dataset) -> StepKey:
        """The key of ``config``'s step on ``dataset`` (images as the trainer receives them)."""
        adaptive = (
            (
                config.clip_update,
                config.clip_learning_rate,
                config.target_unclipped_quantile,
                config.count_noise_multiplier,
            )
            if config.private and config.adaptive_clipping
            else None
        )
        return cls(
            model=config.model,
            activation=config.activation,
            input_shape=tuple(int(d) for d in dataset.info.input_shape),
            num_classes=int(dataset.info.num_classes),
            x_dtype=str(dataset.x_train.dtype),
            y_dtype=str(dataset.y_train.dtype),
            optimizer=config.optimizer,
            momentum_slots=config.optimizer == "momentum" and config.momentum > 0,
            private=config.private,
            sampling=config.sampling if config.private else "",
            adaptive=adaptive,
            averaging=config.weight_averaging_decay is not None,
            parts=model_specs.step_parts(config.model, config.batch_size) if config.private else 1,
        )


class _TracedStep:
    """A model, its optimizer and the traced training and evaluation steps of one ``StepKey``.

    ``start_run`` puts it in the state a freshly built model and optimizer would be in for a config,
    so a run on a reused one computes what a run in a fresh process computes.
    """

    def __init__(self, key: StepKey, model: tf.keras.Model, config: DPConfig, *, dataset: types.Dataset) -> None:
        """``dataset``: as the model receives it (ScatterNet features, not images), for the steps' input shapes."""
        self.key = key
        self.model = model
        self.optimizer = make_optimizer(config)
        self.variables = list(model.trainable_variables)
        # The optimizer's slots and hyperparameters are variables that its first update creates; a step
        # that creates variables is traced twice, so they are created here, by an update with zero
        # gradients (which moves no weight), and ``start_run`` zeroes them and the step count.
        self.optimizer.apply_gradients([(tf.zeros_like(v), v) for v in self.variables])
        self.clip_norm = tf.Variable(config.l2_norm_clip, dtype=tf.float32, trainable=False)
        self.expected_batch_size = tf.Variable(float(config.batch_size), dtype=tf.float32, trainable=False)
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.correct = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.average = WeightAverage(self.variables) if key.averaging else None
        x_train, y_train, x_test = dataset.x_train, dataset.y_train, dataset.x_test
        # No AutoGraph: the steps branch only on Python values (the key, static shapes; the empty batch
        # takes an explicit tf.cond), and converting their source was most of a first run's time.
        self.train_step = tf.function(
            self._step,
            autograph=False,
            input_signature=[
                tf.TensorSpec([None, *x_train.shape[1:]], x_train.dtype),
                tf.TensorSpec([None], y_train.dtype),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int64),
                tf.TensorSpec([], tf.int64),
                tf.TensorSpec([], tf.float32),
            ],
        )
        self._concrete_train_step: Optional[Callable[..., tf.Tensor]] = None
        self.eval_step = tf.function(
            self._evaluate_batch,
            autograph=False,
            input_signature=[tf.TensorSpec([None, *x_test.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int32)],
        )

    def start_run(self, config: DPConfig, initial_weights: Optional[list[np.ndarray]]) -> None:
        """Load ``initial_weights`` (None: the model is freshly built for this run), zero the optimizer's
        state and step count, and set this run's learning rate, momentum, clip norm and batch size."""
        if initial_weights is not None:
            self.model.set_weights(initial_weights)
        optimizer = self.optimizer
        optimizer.iterations.assign(0)
        for variable in self.variables:
            for name in optimizer.get_slot_names():
                slot = optimizer.get_slot(variable, name)
                slot.assign(tf.zeros_like(slot))
        optimizer.learning_rate = config.learning_rate
        if self.key.momentum_slots:
            optimizer.momentum = config.momentum
        self.clip_norm.assign(config.l2_norm_clip)
        self.expected_batch_size.assign(float(config.batch_size))
        self.loss_sum.assign(0.0)
        self.correct.assign(0)
        if self.average is not None:
            assert config.weight_averaging_decay is not None  # the key averages only for a config with a decay
            self.average.start(decay=config.weight_averaging_decay)

    def evaluated_weights(self) -> contextlib.AbstractContextManager[None]:
        """The weights an evaluation (and the kept model) uses: the moving average when there is one."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def concrete_train_step(self) -> Callable[..., tf.Tensor]:
        """The traced training step (traced on first use); called directly, it skips tf.function's
        argument matching, a few hundred microseconds a step."""
        if self._concrete_train_step is None:
            self._concrete_train_step = self.train_step.get_concrete_function()
        return self._concrete_train_step

    def _step(
        self,
        x_train: tf.Tensor,
        y_train: tf.Tensor,
        indices: tf.Tensor,
        count: tf.Tensor,
        run_seed: tf.Tensor,
        step_number: tf.Tensor,
        noise_multiplier: tf.Tensor,
    ) -> tf.Tensor:
        x = tf.gather(x_train, indices)
        y = tf.gather(y_train, indices)
        real = tf.range(tf.shape(indices)[0]) < count
        mask = tf.cast(real, tf.float32)
        seed = tf.stack([run_seed, step_number])
        key = self.key
        clip_norm = tf.identity(self.clip_norm)
        if key.private:
            # Poisson: the expected batch size q*n, never the drawn size; shuffle: the batch's size.
            normalizer = (
                tf.identity(self.expected_batch_size) if key.sampling == "poisson" else tf.cast(count, tf.float32)
            )
            result = privatize.dp_gradient(
                self.model,
                privatize.per_example_loss,
                x,
                y,
                l2_norm_clip=clip_norm,
                noise_multiplier=noise_multiplier,
                normalizer=normalizer,
                seed=seed,
                mask=mask,
                parts=key.parts,
            )
            if key.adaptive is not None:
                update, clip_learning_rate, target_quantile, count_noise_multiplier = key.adaptive
                fraction = adaptive_clip.unclipped_fraction(
                    result.norms,
                    clip_norm=clip_norm,
                    count_noise_multiplier=count_noise_multiplier,
                    expected_batch_size=normalizer,
                    mask=mask,
                    seed=tf.random.experimental.stateless_fold_in(seed, adaptive_clip.COUNT_NOISE_STREAM),
                )
                self.clip_norm.assign(
                    adaptive_clip.next_clip_norm(
                        clip_norm,
                        fraction,
                        update=update,
                        learning_rate=clip_learning_rate,
                        target_quantile=target_quantile,
                    )
                )
        else:
            result = privatize.baseline_gradient(
                self.model, privatize.per_example_loss, x, y, seed=seed, variables=self.variables, mask=mask
            )
        self.optimizer.apply_gradients(zip(result.gradients, self.variables))
        if self.average is not None:
            self.average.update()
        # Totals stay in the graph so that a step never waits for the host.
        self.loss_sum.assign_add(tf.reduce_sum(tf.cast(result.losses * mask, tf.float64)))
        self.correct.assign_add(tf.cast(_correct(result.logits, y, real), tf.int64))
        return clip_norm

    def _evaluate_batch(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = self.model(x, training=False)
        return tf.reduce_sum(privatize.per_example_loss(y, logits)), _correct(logits, y)


class _StepPool:
    """Idle traced steps by key, at most ``size`` in all; a step is lent to one run at a time.

    ``check_out`` hands over an idle step of the key (or None: trace a new one), so two runs with the
    same key at once never share a model; ``check_in`` returns it for the next run.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: OrderedDict[StepKey, list[_TracedStep]] = OrderedDict()
        self._lock = threading.Lock()

    def check_out(self, key: StepKey) -> Optional[_TracedStep]:
        with self._lock:
            idle = self._idle.get(key)
            if not idle:
                return None
            step = idle.pop()
            if not idle:
                del self._idle[key]
            return step

    def check_in(self, step: _TracedStep) -> None:
        with self._lock:
            self._idle.setdefault(step.key, []).append(step)
            self._idle.move_to_end(step.key)
            while sum(len(steps) for steps in self._idle.values()) > self.size:
                oldest = next(iter(self._idle))
                self._idle[oldest].pop(0)
                if not self._idle[oldest]:
                    del self._idle[oldest]

    def idle_count(self, key: Optional[StepKey] = None) -> int:
        """How many traced steps wait for a run (of ``key``, or in all)."""
        with self._lock:
            return sum(len(steps) for k, steps in self._idle.items() if key is None or k == key)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


STEP_POOL = _StepPool(STEP_POOL_SIZE)


def clear_traced_steps() -> None:
    """Forget every idle traced step: the next run of each key traces afresh (frees their memory)."""
    STEP_POOL.clear()


def warm_up(config: Optional[DPConfig] = None) -> None:
    """Trace ``config``'s training and evaluation steps (default: ``DPConfig()``'s) by training it for one
    epoch on a few of its examples, and keep them for the next run with the same ``StepKey``.

    A server worker calls this at start so that a workshop's first run does not wait for tracing.
    Raises the error of the short run if it fails.
    """
    from dpcore.config import DPConfig

    config = config if config is not None else DPConfig()
    examples = min(WARM_UP_EXAMPLES, config.max_train_examples or WARM_UP_EXAMPLES)
    short = config.replace(
        epochs=1,
        batch_size=min(config.batch_size, max(1, examples // 4)),
        max_train_examples=examples,
        validation_fraction=0.0,
        epsilon_budget=None,
        secure_mode=False,
    )
    result = train(short)
    if result.status != "completed":
        raise RuntimeError(f"warming up {config.model!r} failed: {result.error or result.status}")


class _RunSteps:
    """One run's use of a checked-out ``_TracedStep``: its data, seed and padding, its metric totals."""

    def __init__(self, config: DPConfig, traced: _TracedStep, dataset: types.Dataset, *, seed: int) -> None:
        self.config = config
        self.traced = traced
        self.x_train = tf.constant(dataset.x_train)
        self.y_train = tf.constant(dataset.y_train)
        self.seed = tf.constant(seed, tf.int64)
        self.adaptive = config.private and config.adaptive_clipping
        # Poisson batches vary in size; padding them (masked) to a multiple of ``granularity`` keeps
        # the number of distinct shapes, and so of kernel set-ups, small.
        self.granularity = _bucket_granularity(config.batch_size) if config.sampling == "poisson" else 1

    def __call__(self, indices: np.ndarray, step_number: int, noise_multiplier: float) -> Optional[tf.Tensor]:
        """Run one step on the examples at ``indices`` with gradient noise ``noise_multiplier``, adding its
        loss and hits to the running totals; returns the clip norm the step used (None for a baseline)."""
        count = len(indices)
        if count == 0 and not self.config.private:
            return None  # the mean of an empty batch is undefined; a baseline skips it
        padded = -(-max(count, 1) // self.granularity) * self.granularity
        if padded > count:
            indices = np.concatenate([indices, np.zeros(padded - count, dtype=np.int32)])
        return self.traced.concrete_train_step()(
            self.x_train,
            self.y_train,
            tf.constant(indices),
            tf.constant(count, tf.int32),
            self.seed,
            tf.constant(step_number, tf.int64),
            tf.constant(noise_multiplier, tf.float32),
        )

    def clip_norms_of(self, used: list[Optional[tf.Tensor]]) -> tuple[float, ...]:
        """The clip norm of each step as recorded: the tensors the steps returned (read only now, so a
        step never waits for the host), or the config's fixed norm."""
        if not self.config.private:
            return ()
        if not self.adaptive:
            return (float(self.config.l2_norm_clip),) * len(used)
        norms = []
        for value in used:
            assert value is not None  # a private step always returns the clip norm it used
            norms.append(float(value))
        return tuple(norms)

    def take_train_totals(self) -> tuple[float, int]:
        """Sum of training losses and correct predictions since the last call, then reset them."""
        traced = self.traced
        totals = float(traced.loss_sum.numpy()), int(traced.correct.numpy())
        traced.loss_sum.assign(0.0)
        traced.correct.assign(0)
        return totals

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy of the current weights on held-out rows (test or validation)."""
        count = len(y)
        if count == 0:
            return math.nan, math.nan
        loss_sum, correct = 0.0, 0
        for start in range(0, count, EVAL_BATCH):
            batch_loss, batch_correct = self.traced.eval_step(
                x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
            )
            loss_sum += float(batch_loss)
            correct += int(batch_correct)
        return loss_sum / count, correct / count


def _bucket_granularity(batch_size: int) -> int:
    """A power of two near the spread (about sqrt(batch_size)) of Poisson batch sizes, at least 8."""
    return max(8, 2 ** round(math.log2(math.sqrt(batch_size))))


def _correct(logits: tf.Tensor, labels: tf.Tensor, real: Optional[tf.Tensor] = None) -> tf.Tensor:
    hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels)
    if real is not None:
        hits = tf.logical_and(hits, real)
    return tf.reduce_sum(tf.cast(hits, tf.int32))
