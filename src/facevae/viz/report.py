"""The evaluation report: pictures and a self-contained index.html from metrics.json.

`write_pictures` draws the grids and latent plots into the report folder;
`render_report(metrics, folder)` fills `report.html` (package data) from a
metrics dict alone, so a report can be re-rendered from its metrics.json. Every
link is relative, so the folder can be moved or zipped as a whole.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Mapping

import numpy as np
import torch

from facevae.io import atomic_write_text
from facevae.metrics.latent_health import AGGREGATE_KL, PER_IMAGE_KL
from facevae.viz.grid import make_grid, pairs_grid, save_image

RECON_PAIRS = 16
PCA_ATTRIBUTE = "Smiling"
FID_PROTOCOL_SAMPLES = 10_000  # FID-10k, the count of every published figure (README, docs/results.md)


# ----------------------------------------------------------------------------- pictures

def write_pictures(out: Path, originals: torch.Tensor, recons: torch.Tensor, samples: Mapping[str, torch.Tensor],
                   means: torch.Tensor, latent: Mapping[str, Any], ds, eval_idx: np.ndarray) -> dict[str, str]:
    """Sample grids, originals-over-reconstructions, latent plots; returns role -> file name."""
    from facevae.latent.stats import pca_2d
    from facevae.viz import latent_plots

    files: dict[str, str] = {}
    for name, images in samples.items():
        files[f"samples_{name}"] = save_image(make_grid(images, nrow=8), out / f"samples_{name}.png").name
    n = min(RECON_PAIRS, len(originals))
    grid = pairs_grid(originals[:n].float().div(255), recons[:n].float().div(255), per_row=8)
    files["reconstructions"] = save_image(grid, out / "reconstructions.png").name
    activity = torch.tensor(latent["activity_per_dim"], dtype=torch.float64)
    kl = torch.tensor(latent["kl_per_dim"], dtype=torch.float64) if latent.get("kl_per_dim") else None
    threshold = latent["active_threshold"]
    files["latent_kl"] = latent_plots.plot_kl(activity, kl, threshold, out / "latent_kl.png").name
    files["latent_histograms"] = latent_plots.plot_histograms(means, activity, out / "latent_histograms.png").name
    if len(means) >= 3 and means.shape[1] >= 2:
        labels, attr = _labels(ds, eval_idx)
        coords, ratio = pca_2d(means)
        files["latent_pca"] = latent_plots.plot_pca(coords, ratio, labels, attr, out / "latent_pca.png").name
    return files


def _labels(ds, eval_idx: np.ndarray) -> tuple[torch.Tensor | None, str | None]:
    if not getattr(ds, "is_celeba", False) or PCA_ATTRIBUTE not in (ds.attr_names or []):
        return None, None
    col = ds.attr_names.index(PCA_ATTRIBUTE)
    return torch.from_numpy(ds.attributes[eval_idx, col].astype("int64")), PCA_ATTRIBUTE


# ----------------------------------------------------------------------------- formatting

def fid_label(count: int) -> str:
    """'FID-10k', 'FID-500': FID falls as the sample count grows, so the count is part of the figure's name."""
    return f"FID-{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"FID-{count}"


def fid_note(count: int, reference: str) -> str:
    """'FID-500 vs 24,012 train images; not comparable with FID-10k, ...' (plain text, for the CLI and the report).

    Below 10,000 samples the figure is biased upwards by an amount that depends on the count,
    so it cannot be set beside the FID-10k figures the README and results quote.
    """
    note = f"{fid_label(count)} vs {reference}"
    if count < FID_PROTOCOL_SAMPLES:
        note += f"; not comparable with FID-10k, which needs --fid-samples {FID_PROTOCOL_SAMPLES}"
    return note


def sample_fid_note(f: Mapping[str, Any]) -> str:
    return fid_note(f["count"], f'{f["reference_count"]:,} {f["reference_split"]} images')


def reconstruction_fid_note(f: Mapping[str, Any], split: str) -> str:
    return fid_note(f["count"], f'the same {f["reference_count"]:,} {split} originals')


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _img(src: str, alt: str) -> str:
    return f'<img src="{esc(src)}" alt="{esc(alt)}" loading="lazy">'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are already HTML; the first is a label, then numbers, the last a protocol note."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = [f"<td>{row[0]}</td>"] + [f'<td class="num">{c}</td>' for c in row[1:-1]] + [f'<td class="proto">{row[-1]}</td>']
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# ----------------------------------------------------------------------------- sections

def _summary(m: Mapping[str, Any]) -> str:
    rows: list[list[str]] = []
    fid_part = m.get("fid", {})
    split = m["protocol"]["split"]
    for name, f in fid_part.get("samplers", {}).items():
        rows.append([f"FID, {esc(name)} samples", num(f["fid"]), esc(sample_fid_note(f))])
    if "reconstructions" in fid_part:
        f = fid_part["reconstructions"]
        rows.append(["FID, reconstructions", num(f["fid"]), esc(reconstruction_fid_note(f, split))])
    if "skipped" in fid_part:
        rows.append(["FID", "n/a", esc(fid_part["skipped"])])
    lk = m.get("likelihood", {})
    if lk.get("iwae_nll"):
        proto = (f'{num(lk["images"])} {esc(split)} images, 8-bit discrete likelihood. '
                 f'<b>Caveat:</b> {esc(lk.get("bits_per_dim_caveat", ""))}')
        rows.append([f'NLL bound, IWAE k={lk["k"]}', f'{num(lk["iwae_nll"]["bits_per_dim"], 3)} bits/dim',
                     f'{num(lk["iwae_nll"]["nats"], 1)} nats/image; {proto}'])
        rows.append(["Negative ELBO", f'{num(lk["neg_elbo"]["bits_per_dim"], 3)} bits/dim',
                     f'{num(lk["neg_elbo"]["nats"], 1)} nats/image; {proto}'])
    else:
        rows.append(["Likelihood", "n/a", esc(lk.get("skipped") or "")])
    r = m["reconstruction"]
    rproto = f'{num(r["images"])} {esc(split)} images, 8-bit reconstructions'
    rows.append(["PSNR", f'{num(r["psnr_db"])} dB', rproto])
    rows.append(["SSIM", num(r["ssim"], 4), rproto])
    lt = m["latent"]
    rows.append(["Active units", f'{num(lt["active_units"])} / {num(lt["latent_dim"])}',
                 f'Cov<sub>x</sub>(E[z|x]) &gt; {lt["active_threshold"]:g} over {num(lt["images"])} {esc(split)} images'])
    if lt.get("kl"):
        rows.append(["KL per image", f'{num(lt["kl"]["total"], 1)} nats',
                     f'{esc(_sentence(PER_IMAGE_KL))}; {num(lt["kl"]["dims_above"])} dims above '
                     f'{lt["kl"]["threshold"]:g} nats'])
    rows.append(["Aggregate posterior KL", f'{num(lt["aggregate_kl"], 2)} nats', esc(AGGREGATE_KL)])
    return ('<section><h2>Summary</h2><p class="lead">Every figure with its protocol. '
            'Details and definitions below; raw numbers in <a href="metrics.json">metrics.json</a>.</p>'
            + _table(["metric", "value", "protocol"], rows, "summary") + "</section>")


def _samples(m: Mapping[str, Any]) -> str:
    files = m["files"]
    fid_s = m.get("fid", {}).get("samplers", {})
    cards = []
    for name, info in m.get("samplers", {}).items():
        key = f"samples_{name}"
        if key not in files:
            continue
        f = fid_s.get(name)
        score = f'<span class="pill">{fid_label(f["count"])} {num(f["fid"])}</span>' if f else ""
        cards.append(f'<figure>{_img(files[key], name + " samples")}<figcaption><b>{esc(name)}</b>{score}<br>'
                     f'{esc(sampler_caption(info, f))}</figcaption></figure>')
    return ('<section><h2>Samples</h2><p class="lead">The first 64 faces of each sampler\'s seeded stream, '
            'decoded and rounded to 8 bits exactly as they enter Inception.</p>'
            f'<div class="grid">{"".join(cards)}</div></section>')


def sampler_caption(info: Mapping[str, Any], f: Mapping[str, Any] | None) -> str:
    """'FID-500 vs ... . N(0, I), the model's prior.' with options after a ';' only when there are any."""
    opts = ", ".join(f"{k}={v}" for k, v in info.get("options", {}).items() if k != "latent_dim")
    source = "; ".join(part for part in (_sentence(info["source"]), opts) if part) + "."
    return f"{sample_fid_note(f)}. {source}" if f else source


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reconstruction(m: Mapping[str, Any]) -> str:
    r, files = m["reconstruction"], m["files"]
    f = m.get("fid", {}).get("reconstructions")
    rows = [["MSE", num(r["mse"], 5), "per image, on [0, 1] values, averaged over images"],
            ["PSNR", f'{num(r["psnr_db"])} dB &plusmn; {num(r["psnr_db_stderr"])}',
             "10 log<sub>10</sub>(1 / MSE) per image, averaged (&plusmn; standard error)"],
            ["SSIM", f'{num(r["ssim"], 4)} &plusmn; {num(r["ssim_stderr"], 4)}',
             "Gaussian window 11, &sigma; 1.5, K1 0.01, K2 0.03, valid positions, per channel"]]
    if "psnr_db_stderr_by_identity" in r:
        rows.append(["std. error by identity", f'PSNR {num(r["psnr_db_stderr_by_identity"])} dB, '
                                               f'SSIM {num(r["ssim_stderr_by_identity"], 4)}',
                     f'clustered over {num(r["identities"])} identities'])
    if f:
        rows.append(["FID", num(f["fid"]), esc(reconstruction_fid_note(f, r["split"]))])
    return ('<section><h2>Reconstructions</h2>'
            f'<p class="lead">{num(r["images"])} images of the {esc(r["split"])} split, reconstructed from their '
            'posterior means and rounded to 8 bits. Originals above, reconstructions below.</p>'
            f'<figure class="wide">{_img(files["reconstructions"], "originals above reconstructions")}</figure>'
            '<div style="height:14px"></div>' + _table(["metric", "value", "definition"], rows) + "</section>")


def _likelihood(m: Mapping[str, Any]) -> str:
    lk = m.get("likelihood", {})
    if not lk.get("iwae_nll"):
        return f'<section><h2>Likelihood</h2><p class="lead">Not computed: {esc(lk.get("skipped"))}.</p></section>'

    def row(label: str, s: Mapping[str, Any], note: str) -> list[str]:
        bpd = num(s["bits_per_dim"], 4) if "bits_per_dim" in s else "&mdash;"
        se = num(s["stderr_nats"], 1)
        if "stderr_nats_by_identity" in s:
            se += f' ({num(s["stderr_nats_by_identity"], 1)} by identity)'
        return [label, num(s["nats"], 1), se, bpd, note]

    surr = lk["training_surrogate"]
    rows = [row(f'IWAE bound, k = {lk["k"]}', lk["iwae_nll"], "-log mean<sub>j</sub> w<sub>j</sub>, an upper bound on -log p(x)"),
            row("negative ELBO", lk["neg_elbo"], "reconstruction term averaged over the same k draws + closed-form KL"),
            row(f'training surrogate ({esc(surr["loss"])})', surr, esc(surr["note"]))]
    d = lk["dims"]
    note = ""
    if m["model"]["recon_loss"] == "bce":
        note = ('<p class="note">This model was trained with a Bernoulli (BCE) decoder. Its logits define a '
                'continuous Bernoulli on [0, 1], which is nearly flat for mid-grey pixels, so its 8-bit likelihood is '
                'poor (close to 8 bits/dim) even when reconstructions look good. Compare bits/dim with Gaussian or '
                'Laplace decoders only with that in mind; the surrogate row is comparable only between BCE models.</p>')
    return ('<section><h2>Likelihood</h2>'
            f'<p class="lead">{num(lk["images"])} images of the {esc(lk["split"])} split, k = {lk["k"]} posterior draws each '
            f'(seed {lk["seed"]}); D = {num(d)} sub-pixels; bits/dim = nats / (D ln 2). '
            f'Decoder likelihood: {esc(lk["decoder_likelihood"])}. Mean KL(q(z|x) || p(z)) = {num(lk["kl_nats"], 1)} nats.</p>'
            + _table(["bound", "nats / image", "std. error", "bits / dim", "definition"], rows) + note
            + f'<p class="note"><b>bits/dim caveat:</b> {esc(lk.get("bits_per_dim_caveat", ""))}.</p>'
            + _identity_note(lk)
            + '<ul class="defs"><li>Data are 8-bit: each sub-pixel is a level k in {0..255}; the decoder density on '
              'u = k/255 is integrated over the bin [(k - &frac12;)/255, (k + &frac12;)/255] (edge bins open to '
              '&plusmn;&infin;, or closed at 0 and 1 for the continuous Bernoulli), so the 256 probabilities sum to 1.</li>'
              '<li>log w<sub>j</sub> = log p(x|z<sub>j</sub>) + log p(z<sub>j</sub>) - log q(z<sub>j</sub>|x), '
              'z<sub>j</sub> ~ q(z|x); both bounds exceed the true negative log-likelihood, the IWAE one less so.</li></ul>'
            "</section>")


def _identity_note(part: Mapping[str, Any]) -> str:
    if "identities" not in part:
        return ""
    return (f'<p class="note">Standard errors "by identity" are clustered over the {num(part["identities"])} '
            'people of identity_CelebA.txt: photos of one person score alike, so the per-image error understates '
            'the uncertainty of the mean.</p>')


def _latent(m: Mapping[str, Any]) -> str:
    lt, files = m["latent"], m["files"]
    rows = [["Active units", f'{num(lt["active_units"])} / {num(lt["latent_dim"])}',
             f'dimensions with Cov<sub>x</sub>(E[z<sub>d</sub>|x]) &gt; {lt["active_threshold"]:g} (Burda et al. 2016)']]
    if lt.get("kl"):
        k = lt["kl"]
        rows += [["KL per image, summed over dims", f'{num(k["total"], 2)} nats', "sum over dimensions of the image-averaged KL(q(z<sub>d</sub>|x) || N(0, 1))"],
                 ["KL mean / max per dim", f'{num(k["mean_per_dim"], 3)} / {num(k["max"], 3)}', "nats"],
                 ["dims with KL &gt; 0.01", num(k["dims_above"]), f'threshold {k["threshold"]:g} nats']]
    rows.append(["Aggregate posterior KL", f'{num(lt["aggregate_kl"], 2)} nats',
                 "KL(N(m, S) || N(0, I)), m = mean of posterior means, S = Cov(means) + mean posterior variance "
                 "(the aggregate posterior's exact first two moments)"])
    figs = "".join(f'<figure class="{cls}">{_img(files[key], cap)}<figcaption>{cap}</figcaption></figure>'
                   for key, cls, cap in (
                       ("latent_kl", "span", "KL and activity per dimension, sorted; grey: inactive units"),
                       ("latent_pca", "", "posterior means, first two principal components"),
                       ("latent_histograms", "", "posterior means of the most and least active dimensions "
                                                 "against the prior"))
                   if key in files)
    return ('<section><h2>Latent space</h2>'
            f'<p class="lead">Posterior parameters of {num(lt["images"])} images of the {esc(m["protocol"]["split"])} split.</p>'
            + _table(["metric", "value", "definition"], rows) + f'<div style="height:14px"></div><div class="latent-figs">{figs}</div>'
            + "</section>")


def _protocol(m: Mapping[str, Any]) -> str:
    p = m["protocol"]
    items = [("checkpoint", f'<code>{esc(p["checkpoint"])}</code>'), ("weights", f'<code>{esc(p["weights"])}</code>'),
             ("training step", num(p.get("step"))), ("weights sha1", f'<code>{esc(p["weights_sha1"][:16])}</code>'),
             ("data", f'<code>{esc(p["data"])}</code>'), ("split", f'{esc(p["split"])} ({num(p["split_images"])} images)'),
             ("images", f'{p["image_size"]}&times;{p["image_size"]}, crop {p["crop"]}'), ("device", esc(p["device"])),
             ("seed", esc(p["seed"])), ("created", esc(p["created"]))]
    fid_part = m.get("fid", {})
    if "inception" in fid_part:
        ref = fid_part["reference"]
        items.append(("FID network", f'{esc(fid_part.get("inception_network", "NVIDIA Inception-v3"))} '
                                     f'(<code>{esc(fid_part["inception"])}</code>), pool3 features'))
        items.append(("FID resize", f'{esc(fid_part.get("resize", "bilinear to 299x299"))}. {esc(fid_part.get("note", ""))}'))
        where = (f'committed statistics <code>{esc(ref.get("file"))}</code>' if ref.get("source") == "committed"
                 else "statistics computed here and cached")
        items.append(("FID reference", f'{num(ref["count"])} {esc(ref["split"])} images ({esc(ref["selection"])}), '
                                       f'{where}'))
    times = ", ".join(f"{esc(k)} {v:.0f} s" for k, v in m.get("timings_s", {}).items())
    items.append(("time", times))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return (f'<section><h2>Protocol</h2><dl>{dl}</dl>'
            f'<details><summary>all options</summary><pre><code>{esc(json.dumps(p["options"], indent=1))}</code></pre></details>'
            "</section>")


SECTIONS = (_summary, _samples, _reconstruction, _likelihood, _latent, _protocol)


def render_report(metrics: Mapping[str, Any], out: Path) -> Path:
    """Write out/index.html from a metrics dict (as written to metrics.json)."""
    template = Template((resources.files("facevae") / "viz" / "report.html").read_text(encoding="utf-8"))
    p, model = metrics["protocol"], metrics["model"]
    bundled = p["checkpoint"] == "bundled" or str(p["checkpoint"]).startswith("bundled ")  # older reports: "bundled"
    name = f'{p["checkpoint"]} model' if bundled else Path(p["checkpoint"]).name
    subtitle = (f'{esc(model["kind"].upper())}, latent {model["latent_dim"]}, {esc(model["recon_loss"])} decoder'
                f' &middot; step {num(p.get("step"))} &middot; {esc(p["split"])} split &middot; <code>{esc(p["device"])}</code>')
    page = template.substitute(
        title=f"facevae evaluation: {esc(name)}",
        subtitle=subtitle,
        body="\n".join(section(metrics) for section in SECTIONS),
        footer=f'facevae evaluate &middot; {esc(p["created"])} &middot; <a href="metrics.json">metrics.json</a>',
    )
    path = Path(out) / "index.html"
    atomic_write_text(path, page)
    return path
