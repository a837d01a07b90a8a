"""The Gradio page (`facevae serve`): random faces, attribute and latent sliders, uploads, interpolation.

Layout and wiring only; what each interaction computes lives in `handlers.py`.
The page works offline: no analytics, no share link, no web fonts, nothing
fetched from outside the machine.
"""
from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

from facevae.errors import FacevaeError
from facevae.web.handlers import MAX_SEED, Handlers
from facevae.web.upload import MAX_UPLOAD_BYTES

SLIDER_COLUMNS = 4
ATTR_RANGE = 3.0  # strength 1 = one population spread along the attribute; 3 reaches the edge of the data
DIM_RANGE = 3.0  # in standard deviations of that dimension's posterior mean
# shown first, in this order: the attributes people look for
COMMON_ATTRIBUTES = ("Smiling", "Eyeglasses", "Male", "Young", "Blond_Hair", "Bald", "Mustache", "Wearing_Hat")
READABLE_LABELS = {"5_o_Clock_Shadow": "5 o'Clock Shadow"}
STRENGTH_HELP = ("Strength 1 moves the face by one typical spread of the training faces along the attribute; "
                 "-1 the other way; ±3 reaches the edge of the data. 0 is the chosen face.")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "GRADIO_SSR_MODE": "False"}
# No public API: every interaction needs the session's state (the chosen latent), which a
# bare API call does not have; scripts use facevae.load() (a FaceVAE) instead.
PAGE_ONLY = {"api_visibility": "private"}
DECODER_NOTES = {"sharp": "sharp decoder (fine-tuned with the encoder frozen; `--decoder likelihood` shows the "
                          "model's own)",
                 "likelihood": "likelihood decoder (the one its bits/dim measure)"}


def import_gradio():
    """Gradio, imported with its network features off (its analytics read the environment at import)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # always: the page must never phone home
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    try:
        import gradio as gr
    except ImportError:
        raise FacevaeError("the web page needs Gradio: pip install 'facevae[web]'") from None
    return gr


def css() -> str:
    return (resources.files("facevae.web") / "style.css").read_text()


def theme(gr):
    # system fonts only: a web font would make the browser reach for the internet
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def header(h: Handlers) -> str:
    ex = h.ex
    size, crop = ex.image_size, ex.cfg.data.crop
    return (f"## facevae: explore a face VAE\n"
            f"Model: {ex.vae.label} ({ex.cfg.model.kind}, {size}x{size} pixels, {ex.latent_dim}-dim latent), "
            f"drawn by its {DECODER_NOTES[ex.vae.decoder]}.  \n"
            f"Draw random faces, click one to edit it with the sliders, or upload your own photo. "
            f"The model expects CelebA-aligned faces: a centered {crop}x{crop} crop of the 178x218 aligned "
            f"image, resized to {size}x{size}. Pictures download at the model's {size}x{size} pixels.")


def crop_note(h: Handlers) -> str:
    size, crop = h.ex.image_size, h.ex.cfg.data.crop
    return (f"Upload a face photo (JPEG, PNG or WebP, up to {MAX_UPLOAD_BYTES // 2**20} MB). It is cropped like "
            f"CelebA: a centered square {crop / 178:.0%} of the photo's width, resized to {size}x{size}. "
            "Works best for a frontal face, eyes level, filling the middle of a portrait photo "
            "(CelebA-aligned: 178x218 with the face centered).")


def _user_errors(gr, fn):
    """A FacevaeError becomes a message on the page; the server carries on either way."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except FacevaeError as e:
            raise gr.Error(str(e)) from None
    return wrapper


def _thumbnail(data: bytes, width: int = 96):
    from facevae.web.upload import read_upload

    img = read_upload(data)
    return img.resize((width, round(img.height * width / img.width)))


def _image(gr, label: str, elem_id: str, height: int = 220, buttons=("download",)):
    return gr.Image(label=label, elem_id=elem_id, elem_classes=["face"], type="numpy", format="png",
                    interactive=False, height=height, buttons=list(buttons))


def _slider(gr, *args, **kwargs):
    """gr.Slider that clamps an out-of-range value instead of refusing it.

    Gradio refuses a typed value outside the range with a toast, and the clamp it does on
    blur then arrives while that refused request is pending, where "always_last" drops it:
    the picture kept showing the previous value. Clamped here, every value is drawn.
    (Per instance: a gr.Slider subclass would make Gradio write a .pyi beside this module.)
    """
    slider = gr.Slider(*args, **kwargs)
    refuse = slider.preprocess

    def preprocess(payload):
        if payload is not None:
            payload = min(max(float(payload), slider.minimum), slider.maximum)
        return refuse(payload)

    slider.preprocess = preprocess
    return slider


def attribute_label(name: str) -> str:
    return READABLE_LABELS.get(name, name.replace("_", " "))


def _sliders(gr, labels_ids: list[tuple[str, str]], limit: float) -> dict:
    """elem_id -> slider, in rows of SLIDER_COLUMNS so that every column lines up."""
    sliders = {}
    for i in range(0, len(labels_ids), SLIDER_COLUMNS):
        row = labels_ids[i:i + SLIDER_COLUMNS]
        with gr.Row(elem_classes=["slider-row"], equal_height=True):
            for label, elem_id in row:
                sliders[elem_id] = _slider(gr, -limit, limit, value=0.0, step=0.1, label=label, elem_id=elem_id,
                                           elem_classes=["centred"], buttons=[], min_width=150)
            for _ in range(SLIDER_COLUMNS - len(row)):
                gr.Column(min_width=150)  # a short last row keeps the others' column widths
    return sliders


def _attribute_sliders(gr, names: list[str]) -> list:
    """The common attributes first, then the rest; handed back in `names`' order (the handlers')."""
    common = [n for n in COMMON_ATTRIBUTES if n in names]
    groups = [(f"Common attributes ({len(common)})", common),
              (f"More attributes ({len(names) - len(common)})", [n for n in names if n not in common])]
    sliders = {}
    for title, group in groups:
        if not group:
            continue
        with gr.Accordion(title, open=True):
            if group is common or not common:
                gr.Markdown(STRENGTH_HELP, elem_id="strength-help")
            sliders.update(_sliders(gr, [(attribute_label(n), f"slider-{n}") for n in group], ATTR_RANGE))
    return [sliders[f"slider-{n}"] for n in names]


def build_app(h: Handlers):
    """The gr.Blocks page for these handlers (not launched)."""
    gr = import_gradio()
    ex = h.ex
    wrap = functools.partial(_user_errors, gr)
    with gr.Blocks(title="facevae", analytics_enabled=False, delete_cache=(3600, 7200)) as demo:
        state = gr.State(None)
        gr.Markdown(header(h), elem_id="header")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### Random faces")
                sampler = gr.Radio(list(ex.samplers), value="prior", label="Sampler", elem_id="sampler",
                                   info=ex.sampler_note or None)
                with gr.Row():
                    temperature = _slider(gr, 0.1, 1.5, value=1.0, step=0.05, label="Temperature",
                                            elem_id="temperature", buttons=[])
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="seed", minimum=0, maximum=MAX_SEED)
                new = gr.Button("New faces", elem_id="new-faces", variant="primary")
                faces = gr.Gallery(label="Click a face to edit it", elem_id="faces", columns=4, format="png",
                                   allow_preview=False, object_fit="contain", interactive=False)
                gr.Markdown("### Your photo")
                gr.Markdown(crop_note(h))
                upload = gr.File(label="Face photo", type="binary", file_types=["image"], elem_id="upload")
                upload_error = gr.Markdown("", elem_id="upload-error")
                examples = None
                if h.examples:
                    examples = gr.Gallery([_thumbnail(b) for b in h.examples], label="Or click an example photo",
                                          elem_id="examples", columns=8, height="auto", format="png",
                                          allow_preview=False, interactive=False)
                with gr.Row():
                    cropped = _image(gr, "What the model sees", "upload-input", 160)
                    recon = _image(gr, "Reconstruction", "upload-recon", 160)
            with gr.Column(scale=3, min_width=420):
                # sticky (style.css): the faces stay in view while the sliders below them scroll
                with gr.Column(elem_id="edit-panel"):
                    gr.Markdown("### Edit the chosen face")
                    with gr.Row(elem_id="edit-faces"):
                        chosen = _image(gr, "Chosen face", "chosen", 256)
                        edited = _image(gr, "Edited", "edited", 256)
                    with gr.Row(elem_id="edit-buttons"):
                        reset = gr.Button("Reset sliders", elem_id="reset", size="sm")
                        # each end is shown beside its button, so "Use as A" visibly does something
                        use_a = gr.Button("Use as A", elem_id="use-a", size="sm")
                        end_a = _image(gr, "A", "end-a", 72, buttons=())
                        use_b = gr.Button("Use as B", elem_id="use-b", size="sm")
                        end_b = _image(gr, "B", "end-b", 72, buttons=())
                if ex.attr_names:
                    attr_sliders = _attribute_sliders(gr, ex.attr_names)
                else:
                    attr_sliders = []
                    gr.Markdown(ex.attr_note, elem_id="attributes-note")
                with gr.Accordion(f"Most active latent dimensions ({len(ex.dims)})", open=True):
                    dims = [int(d) for d in ex.dims]
                    dim_sliders = list(_sliders(gr, [(f"z[{d}]", f"slider-z{d}") for d in dims], DIM_RANGE).values())
        gr.Markdown("### Interpolation from A to B")
        with gr.Row():
            steps = _slider(gr, 3, 16, value=8, step=1, label="Steps", elem_id="steps", buttons=[])
            mode = gr.Radio(["slerp", "linear"], value="slerp", label="Path", elem_id="mode")
            gif = gr.File(label="GIF download", elem_id="gif", interactive=False)
            gif_preview = gr.Image(label="Animated", elem_id="gif-preview", type="filepath", interactive=False,
                                   height=140, buttons=[])
        strip = gr.Image(label="A to B", elem_id="strip", type="numpy", format="png", interactive=False,
                         buttons=["download"])

        sliders = attr_sliders + dim_sliders
        draw_in = [sampler, temperature, seed, state]

        def start(*args):
            faces_, state_, chosen_, edited_, *rest = h.start(*args)
            *zeros, a, b, strip_, gif_ = rest
            return (faces_, state_, chosen_, edited_, *zeros, a, b, *named_strip(strip_, gif_, *args[3:]))

        def named_strip(strip_, gif_, steps_, mode_):
            return h.named_png(strip_, f"facevae-interpolation-{mode_}-{int(steps_)}.png"), gif_, gif_

        def interpolate(state_, steps_, mode_):
            return named_strip(*h.interpolate(state_, steps_, mode_), steps_, mode_)

        def edit(state_, *values):
            return h.named_png(h.edit(state_, *values), h.edit_name(values))

        interp_in, interp_out = [state, steps, mode], [strip, gif, gif_preview]
        demo.load(wrap(start), [sampler, temperature, seed, steps, mode],
                  [faces, state, chosen, edited, *sliders, end_a, end_b, *interp_out], **PAGE_ONLY)
        new.click(wrap(h.new_faces), draw_in, [seed, faces, state], show_progress="minimal", **PAGE_ONLY)
        # .change, not .input or .release: it also fires for keyboard steps and for the clamp
        # of an out-of-range number on blur, so the picture always shows the value on screen
        gr.on([sampler.input, temperature.change, seed.submit], wrap(h.draw), draw_in, [faces, state],
              trigger_mode="always_last", show_progress="minimal", **PAGE_ONLY)

        def choose(state, evt):
            return h.choose(state, evt.index)

        # set as an object, not a string: Gradio reads it to pass the click's data
        choose.__annotations__["evt"] = gr.SelectData

        faces.select(wrap(choose), [state], [state, chosen, edited, *sliders], show_progress="hidden", **PAGE_ONLY)
        if sliders:
            gr.on([s.change for s in sliders], wrap(edit), [state, *sliders], edited,
                  trigger_mode="always_last", show_progress="hidden", **PAGE_ONLY)
        reset.click(wrap(h.reset), [state], [edited, *sliders], show_progress="hidden", **PAGE_ONLY)

        upload_out = [upload_error, upload, cropped, recon, state, chosen, edited, *sliders]

        def noted(note, *pictures):
            return (f"Note: {note}" if note else "", *pictures)

        def on_upload(data, state):
            try:
                message, *pictures = noted(*h.upload(data, state))
            except FacevaeError as e:
                return (f"Upload rejected: {e}", None, *[gr.skip()] * (len(upload_out) - 2))
            # cleared either way, so the next photo can be dropped straight onto the drop zone
            return (message, None, *pictures)

        upload.upload(on_upload, [upload, state], upload_out, show_progress="hidden", **PAGE_ONLY)
        if examples is not None:
            def on_example(state, evt):
                message, *pictures = noted(*h.example(state, evt.index))
                return (message, gr.skip(), *pictures)

            on_example.__annotations__["evt"] = gr.SelectData
            examples.select(wrap(on_example), [state], upload_out, show_progress="hidden", **PAGE_ONLY)

        for button, which, image in ((use_a, "a", end_a), (use_b, "b", end_b)):
            button.click(wrap(functools.partial(h.set_end, which)), [state, *sliders], [state, image],
                         show_progress="hidden", **PAGE_ONLY).then(
                wrap(interpolate), interp_in, interp_out, show_progress="minimal", **PAGE_ONLY)
        gr.on([steps.change, mode.input], wrap(interpolate), interp_in, interp_out, trigger_mode="always_last",
              show_progress="minimal", **PAGE_ONLY)
    return demo


def launch(demo, host: str, port: int, extra_paths: list[Path] = (), block: bool = True, say=print):
    """Serve `demo` on host:port, offline, uploads capped at MAX_UPLOAD_BYTES and other request bodies at
    MAX_JSON_BYTES (web.limits). Returns (app, local_url, share_url).

    Gradio's own start-up lines are silenced (their `share=True` hint does not apply to
    an offline page); `say` gets one line with the address instead.
    """
    from starlette.middleware import Middleware

    from facevae.web.limits import BodyLimit

    gr = import_gradio()
    result = demo.queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, share=False, inbrowser=False, max_file_size=MAX_UPLOAD_BYTES,
        ssr_mode=False, mcp_server=False, show_error=False, quiet=True, prevent_thread_lock=True,
        allowed_paths=[str(p) for p in extra_paths], footer_links=["settings"], css=css(), theme=theme(gr),
        enable_monitoring=False, pwa=False, app_kwargs={"middleware": [Middleware(BodyLimit)]},
    )
    say(f"facevae serve: open {result[1]} in a browser (Ctrl+C stops the server)")
    if block:
        demo.block_thread()
    return result
