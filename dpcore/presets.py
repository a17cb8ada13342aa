"""The three recipes from the sources as ready-made DPConfigs, so a workshop starts from known ground."""
from __future__ import annotations

from dataclasses import dataclass

from dpcore.config import DPConfig
from dpcore.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named recipe: a config plus where its numbers come from."""

    key: str
    title: str
    source: str
    description: str
    config: DPConfig


PRESETS: tuple[Preset, ...] = (
    Preset(
        key="tutorial_cnn",
        title="Tutorial CNN (DP-SGD)",
        source="TensorFlow Privacy tutorial: small CNN with DP gradient descent",
        description="Small CNN, SGD with lr 0.25, batch 250, clip 1.5, noise 1.2, 4 epochs.",
        config=DPConfig(
            dataset="fashion_mnist", model="cnn", optimizer="sgd", learning_rate=0.25,
            batch_size=250, l2_norm_clip=1.5, noise_multiplier=1.2, epochs=4, delta=1e-5,
        ),
    ),
    Preset(
        key="dp_adam_mlp",
        title="DP-Adam MLP",
        source="Exercise: reduce membership-inference risk of an MLP with DP-Adam",
        description="MLP, Adam with lr 0.001, batch 256, clip 1.0, noise 1.1, 15 epochs.",
        config=DPConfig(
            dataset="digits", model="mlp", optimizer="adam", learning_rate=0.001,
            batch_size=256, l2_norm_clip=1.0, noise_multiplier=1.1, epochs=15, delta=1e-5,
        ),
    ),
    Preset(
        key="lenet5",
        title="LeNet-5 (DP momentum)",
        source="MindArmour: LeNet-5 with DP momentum and an RDP budget monitor",
        description="LeNet-5, momentum 0.9 with lr 0.01, batch 256, clip 1.0, noise 1.0, 10 epochs.",
        config=DPConfig(
            dataset="fashion_mnist", model="lenet5", optimizer="momentum", learning_rate=0.01,
            momentum=0.9, batch_size=256, l2_norm_clip=1.0, noise_multiplier=1.0, epochs=10,
            delta=1e-5,
        ),
    ),
)


def preset_keys() -> tuple[str, ...]:
    """The keys of all presets, in display order."""
    return tuple(p.key for p in PRESETS)


def get_preset(key: str) -> Preset:
    """The preset called ``key``; an unknown key is a ConfigError naming the allowed ones."""
    for preset in PRESETS:
        if preset.key == key:
            return preset
    raise ConfigError("preset", f"{key!r} is not a known preset", allowed=", ".join(preset_keys()))
