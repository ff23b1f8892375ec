"""Activation checkpointing on as many layers as TRAIN_MEMORY_MB needs."""

from dataclasses import replace
from types import SimpleNamespace

from config import TrainSettings
from trainer.checkpointing import checkpoint_layers, layers_within_budget
from trainer.finetune import load_base

SMOLLM2_135M = SimpleNamespace(hidden_size=576, intermediate_size=1536)
WEIGHTS_MB = 540


def test_the_default_budget_checkpoints_every_layer_of_smollm2_and_a_larger_one_frees_some():
    settings = replace(TrainSettings(), bf16="1")

    assert layers_within_budget(SMOLLM2_135M, settings, 30, WEIGHTS_MB) == 0  # 2 GB: as before
    assert 0 < layers_within_budget(SMOLLM2_135M, replace(settings, memory_mb=2400), 30, WEIGHTS_MB) < 30
    assert layers_within_budget(SMOLLM2_135M, replace(settings, memory_mb=8000), 30, WEIGHTS_MB) == 30
    halved = replace(settings, memory_mb=2400, batch_tokens=512)
    assert layers_within_budget(SMOLLM2_135M, halved, 30, WEIGHTS_MB) > \
        layers_within_budget(SMOLLM2_135M, replace(settings, memory_mb=2400), 30, WEIGHTS_MB)


def test_a_full_fine_tune_counts_its_gradients_and_optimiser_state_against_the_budget():
    lora = replace(TrainSettings(), bf16="1", memory_mb=4000)

    assert layers_within_budget(SMOLLM2_135M, lora, 30, WEIGHTS_MB) == 30
    assert layers_within_budget(SMOLLM2_135M, replace(lora, full_finetune=True), 30, WEIGHTS_MB) < 10  # 2.2 GB of state


def test_the_layers_the_budget_holds_are_not_checkpointed(tiny_model_dir):
    flags = {}
    for name, settings in {"tight": replace(TrainSettings(), memory_mb=256),
                           "roomy": replace(TrainSettings(), memory_mb=100_000),
                           "off": replace(TrainSettings(), gradient_checkpointing=False)}.items():
        _, model = load_base(str(tiny_model_dir))
        counts = checkpoint_layers(model, settings)
        flags[name] = (counts, [layer.gradient_checkpointing for layer in model.model.layers])

    assert flags["tight"] == ((2, 2), [True, True])
    assert flags["roomy"] == ((0, 2), [False, False])
    assert flags["off"] == ((0, 2), [False, False])
