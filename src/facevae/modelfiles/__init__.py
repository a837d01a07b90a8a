"""The model-file layer: weights, training checkpoints, bundled models and Hub folders.

Below `tasks/` and above the pure parts; inference imports this, never the trainer.
"""
