"""Latent-space tools: encoding, attribute vectors, interpolation, projections."""
