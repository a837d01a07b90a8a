"""The training loop and the run wiring; import `facevae.training.trainer` or `.run` directly.

Nothing is imported here, so inference code that touches `facevae.training` never pays
for (or depends on) the trainer.
"""
