"""The optimizer of the deep stage and its learning-rate schedule, from the ``[training]`` config."""

from __future__ import annotations

import keras

from multifield.config import TrainingConfig


def learning_rate_schedule(training: TrainingConfig, steps_per_epoch: int):
    schedule = training.schedule
    if schedule.kind == "constant":
        return training.learning_rate
    if schedule.kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate,
            decay_steps=max(1, round(schedule.decay_epochs * steps_per_epoch)),
            decay_rate=schedule.decay_rate,
        )
    warmup_steps = round(schedule.warmup_epochs * steps_per_epoch)
    total_steps = max(1, training.max_epochs * steps_per_epoch - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=total_steps,
            alpha=schedule.alpha,
            warmup_target=training.learning_rate,
            warmup_steps=warmup_steps,
        )
    return keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=total_steps, alpha=schedule.alpha)


def make_optimizer(training: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    learning_rate = learning_rate_schedule(training, steps_per_epoch)
    common = {"learning_rate": learning_rate, "clipnorm": training.clipnorm}
    if training.weight_decay > 0:
        common["weight_decay"] = training.weight_decay
    if training.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    if training.optimizer == "adamw":
        common.setdefault("weight_decay", 0.004)
        return keras.optimizers.AdamW(**common)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=training.momentum, nesterov=True, **common)
    return keras.optimizers.RMSprop(momentum=training.momentum, **common)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


__all__ = ["current_learning_rate", "learning_rate_schedule", "make_optimizer"]
