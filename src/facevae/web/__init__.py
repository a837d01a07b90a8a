"""`facevae serve`: a local Gradio page to explore a model (random faces, attribute sliders, interpolation).

explorer.py holds the model side (no Gradio), handlers.py one function per
interaction (no Gradio), upload.py the upload checks, page.py the Gradio page.
"""
