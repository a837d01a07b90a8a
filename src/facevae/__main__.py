"""`python -m facevae ...` (what torchrun launches)."""
from facevae.cli import main

main()
