"""The model-file layer: weights, training checkpoints, bundled models and Hub folders.

Below `tasks/` and above the pure parts; inference imports this, never the trainer.
"""

# Here, not in checkpoint.py, so the CLI can name them in its help without importing torch.
BUNDLED = "celeba64"  # the default model
BUNDLED_NAMES = ("celeba64", "celeba128")  # models shipped in facevae/pretrained/<name>.safetensors
