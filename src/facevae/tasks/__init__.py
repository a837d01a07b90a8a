"""The application layer: each task loads a checkpoint, reads data and writes files, using the pure parts.

`cli/` and `web/` call these; `models/`, `losses`, `decoders`, `latent/` and
`sampling/` below them never touch a file.
"""
