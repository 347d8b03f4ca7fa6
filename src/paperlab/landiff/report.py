"""Claims and report of ``paperlab landiff run`` (every verdict from this run's measurements, with intervals)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paperlab.core.runs import Claim, Run, claim_of_parts, markdown_table
from paperlab.core.stats import Estimate, bootstrap_ci, paired_bootstrap_diff, spearman_ci, wilson

CHANCE = {"colour": 1 / 6, "shape": 1 / 3, "direction": 1 / 4}


def _acc(scores: list[int]) -> Estimate:
    return wilson(int(np.sum(scores)), len(scores))


def compression_claim(cfg, res: dict) -> Claim:
    """Tokens at the stated ratio that keep the clip: error relative to the mean-clip predictor below the bound.

    The plain normalised MSE is not the test: background cells look alike in every clip, so predicting the
    training mean at each position already scores well (ours ~0.3, about LanDiff's reported 0.3); the ratio
    of the tokenizer's error to that baseline says whether the tokens carry the clip.
    """
    from paperlab.core.stats import index_bootstrap

    t = res["tokenizer"]
    err = np.asarray(t["mse_per_clip"])
    base = np.asarray(t["mean_clip_mse_per_clip"])
    rel = index_bootstrap(len(err), lambda i: float(err[i].mean() / base[i].mean()), n_boot=cfg.n_boot,
                          seed=cfg.seed)
    return claim_of_parts(
        "landiff_compresses",
        f"the semantic tokenizer keeps a {t['pixel_frames']}-frame clip in {t['tokens_per_clip']} tokens "
        f"({t['ratio_pixels']:.0f}x fewer bits than its pixels, {t['ratio_features']:.0f}x fewer than its float "
        f"features) and reconstructs its held-out features with less than {cfg.mse_bound} of the error of the "
        "mean clip",
        {"error_relative_to_mean_clip": (rel, {"expect": "less", "null": cfg.mse_bound})},
        normalised_feature_mse=float(err.mean()), mean_clip_mse=float(base.mean()),
        tokens_per_clip=t["tokens_per_clip"], ratio_pixels=t["ratio_pixels"], ratio_features=t["ratio_features"],
        codebook_usage=t["usage"], codebook_perplexity=t["perplexity"])


def caption_claim(cfg, res: dict) -> Claim:
    gen, null = res["judge_generated"], res["judge_null"]
    parts: dict[str, tuple[Estimate, Any]] = {
        f"{k}_accuracy": (_acc(gen[k]), {"expect": "greater", "null": CHANCE[k]}) for k in CHANCE}
    per_clip_text = np.mean([gen[k] for k in CHANCE], axis=0)
    per_clip_null = np.mean([null[k] for k in CHANCE], axis=0)
    parts["text_minus_null"] = (paired_bootstrap_diff(per_clip_text, per_clip_null, n_boot=cfg.n_boot,
                                                      seed=cfg.seed), {"expect": "greater", "null": 0.0})
    return claim_of_parts(
        "landiff_follows_captions",
        "clips generated from held-out captions show the asked colour, shape and direction above chance "
        "(held-out judges), and agree with the caption more than clips generated from the null text",
        parts, chance=CHANCE, null_accuracy={k: float(np.mean(null[k])) for k in CHANCE},
        judge_on_real={k: float(np.mean(v)) for k, v in res["judge_real"].items()},
        cfg_scale=cfg.cfg_scale)


def motion_claim(cfg, res: dict) -> Claim:
    sw = res["motion_sweep"]
    meas = np.asarray(sw["measured"])
    levels = np.asarray(sw["levels"])
    req = np.tile(levels, meas.shape[0])
    rho = spearman_ci(req, meas.reshape(-1))
    hi_lo = paired_bootstrap_diff(meas[:, -1], meas[:, 0], n_boot=cfg.n_boot, seed=cfg.seed)
    return claim_of_parts(
        "motion_score_controls_motion",
        "the measured motion of generated clips rises with the requested motion score (same captions, "
        "requested scores at training quantiles)",
        {"spearman_requested_vs_measured": (rho, {"expect": "greater", "null": 0.0}),
         "highest_minus_lowest_request": (hi_lo, {"expect": "greater", "null": 0.0})},
        levels=levels.tolist(), mean_measured=meas.mean(0).tolist())


def drift(cfg, res: dict) -> dict:
    """Caption agreement (colour, shape) and motion of the first vs. the last chunk of each long video."""
    pc = res["long"]["per_chunk"]
    first, last = pc[0], pc[-1]
    agree_first = (np.asarray(first["colour"]) + np.asarray(first["shape"])) / 2
    agree_last = (np.asarray(last["colour"]) + np.asarray(last["shape"])) / 2
    drop = paired_bootstrap_diff(agree_first, agree_last, n_boot=cfg.n_boot, seed=cfg.seed)
    ratio = np.log(np.maximum(last["motion"], 1e-6)) - np.log(np.maximum(first["motion"], 1e-6))
    log_ratio = bootstrap_ci(ratio, n_boot=cfg.n_boot, seed=cfg.seed)
    within = drop.finite and drop.hi <= cfg.drift_bound
    motion_ok = log_ratio.finite and abs(log_ratio.lo) <= math.log(2) and abs(log_ratio.hi) <= math.log(2)
    # drift is only measurable from a first chunk that follows its caption (above the mean chance of colour
    # and shape, 1/4); otherwise "no drop" says nothing
    first_est = bootstrap_ci(agree_first, n_boot=cfg.n_boot, seed=cfg.seed)
    measurable = bool(first_est.finite and first_est.lo > (CHANCE["colour"] + CHANCE["shape"]) / 2)
    return {"agreement_drop": drop.as_dict(), "motion_log_ratio": log_ratio.as_dict(),
            "first_chunk_agreement": first_est.as_dict(), "measurable": measurable,
            "agreement_by_chunk": [float(np.mean((np.asarray(c["colour"]) + np.asarray(c["shape"])) / 2)) for c in pc],
            "motion_by_chunk": [float(np.mean(c["motion"])) for c in pc],
            "bound": cfg.drift_bound, "within_bound": bool(within and motion_ok and measurable),
            "agreement_within_bound": bool(within), "motion_within_2x": bool(motion_ok)}


def make_claims(cfg, res: dict) -> list[Claim]:
    res["drift"] = drift(cfg, res)
    return [compression_claim(cfg, res), caption_claim(cfg, res), motion_claim(cfg, res)]


# ---------------------------------------------------------------------------------------------- report


def _plots(run: Run, cfg, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = res["training"]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3))
    for ax, name in zip(axes, ("tokenizer", "lm", "detok_base", "detok_control", "judge"), strict=True):
        ax.plot(tr[name]["curve"])
        ax.set_title(name)
        ax.set_xlabel("step (x steps/20)")
    run.savefig(fig, "training_curves", "training losses of the five stages")

    sw = res["motion_sweep"]
    meas = np.asarray(sw["measured"])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for row in meas:
        ax.plot(sw["levels"], row, color="0.8", lw=0.8)
    ax.plot(sw["levels"], meas.mean(0), "o-", color="C0", label="mean over captions")
    ax.plot(sw["levels"], sw["levels"], "k--", lw=0.8, label="measured = requested")
    ax.set_xlabel("requested motion score")
    ax.set_ylabel("measured motion score")
    ax.legend(fontsize=8)
    run.savefig(fig, "motion_sweep", "requested vs. measured motion (each grey line one caption)")

    dr = res["drift"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(range(1, len(dr["agreement_by_chunk"]) + 1), dr["agreement_by_chunk"], "o-", label="caption agreement")
    ax.set_xlabel("chunk")
    ax.set_ylim(0, 1.05)
    ax2 = ax.twinx()
    ax2.plot(range(1, len(dr["motion_by_chunk"]) + 1), dr["motion_by_chunk"], "s--", color="C1", label="motion")
    ax.set_ylabel("judge agreement (colour, shape)")
    ax2.set_ylabel("motion score")
    run.savefig(fig, "long_video_drift", "long video: agreement with the caption and motion per chunk")


def _strips(run: Run, cfg) -> list[str]:
    """Frame strips of the saved GIFs (real | reconstructed | generated | null) as PNG figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageSequence

    from paperlab.core.video import frame_strip

    media = run.path("media")

    def frames(name: str) -> np.ndarray | None:
        p = media / name
        if not p.exists():
            return None
        with Image.open(p) as im:
            fr = [np.asarray(f.convert("RGB"))[::4, ::4] for f in ImageSequence.Iterator(im)]
        return np.stack(fr)

    rows = []
    for i in range(4):
        for kind in ("real", "reconstructed", "generated", "null"):
            f = frames(f"{kind}_{i}.gif")
            if f is not None:
                rows.append((f"{kind} {i}", frame_strip(f, 8)))
    out = []
    if rows:
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 0.9 * len(rows)))
        for ax, (name, img) in zip(np.atleast_1d(axes), rows, strict=True):
            ax.imshow(img)
            ax.set_axis_off()
            ax.set_title(name, fontsize=7, loc="left")
        run.savefig(fig, "examples", "real clip, its tokenizer+detokenizer reconstruction, a clip generated from "
                    "its caption, one from the null text (8 of 16 frames)")
        out.append("examples")
    longs = [frames(f"long_{i}.gif") for i in range(2)]
    longs = [x for x in longs if x is not None]
    if longs:
        fig, axes = plt.subplots(len(longs), 1, figsize=(12, 1.2 * len(longs)))
        for ax, f in zip(np.atleast_1d(axes), longs, strict=True):
            ax.imshow(frame_strip(f, 16))
            ax.set_axis_off()
        run.savefig(fig, "long_video", "long videos generated chunk by chunk (16 evenly spaced frames)")
    return out


def write_report(run: Run, cfg, res: dict, claims: list[Claim], paper: str) -> None:
    _plots(run, cfg, res)
    _strips(run, cfg)
    t = res["tokenizer"]
    tm = res["timings"]
    tr = res["training"]
    sections = []
    sections.append("## Setup\n\n" + markdown_table(
        ["quantity", "value"],
        [["clips (train / test / judge)", f"{cfg.n_train} / {cfg.n_test} / {cfg.n_judge}"],
         ["frames per clip, size", f"{cfg.clip_frames} x {cfg.size}x{cfg.size}"],
         ["semantic frames (every stride-th)", f"{t['semantic_frames']} (stride {cfg.stride})"],
         ["frame encoder (frozen)", cfg.encoder], ["text encoder (frozen, per-token)", cfg.text_encoder],
         ["I / P query tokens", f"{cfg.n_i} / {cfg.n_p} per P-frame"],
         ["codebook (EMA VQ)", f"{cfg.codebook_size} x dim {cfg.codebook_dim}, decay 0.8, rotation trick, k-means "
          "init, dead-code threshold 2, commitment 1.0"],
         ["LM", f"{cfg.lm_layers} x {cfg.lm_width} ({cfg.lm_backbone}), CFG {cfg.cfg_scale}, T {cfg.temperature}"],
         ["detokenizer", f"{cfg.det_layers} blocks x {cfg.det_width}, control copy of {cfg.det_control_layers}, "
          f"{cfg.sample_steps} Euler steps"],
         ["parameters", ", ".join(f"{k} {v:,}" for k, v in res["params"].items())]]))
    sections.append("## Cost of each stage\n\n" + markdown_table(
        ["stage", "seconds", "steps", "first loss", "last loss"],
        [["data (render clips)", tm.get("data", 0), "", "", ""], ["frame encoder", tm.get("encode", 0), "", "", ""],
         ["text encoder", tm.get("text_encoder", 0), "", "", ""]]
        + [[k, tr[k]["seconds"], tr[k]["steps"], tr[k]["first_loss"], tr[k]["last_loss"]] for k in tr]
        + [["evaluation (reconstruct, generate, sweep, long)", res.get("seconds_evaluate", 0), "", "", ""],
           ["total", tm.get("total", 0), "", "", ""]])
        + "\n\nA stage reused from the run folder (a resumed run) shows the seconds it took when it was trained.")
    sections.append("## Compression and reconstruction\n\n" + markdown_table(
        ["quantity", "value"],
        [["tokens per clip (I + P)", f"{t['tokens_per_clip']} = {cfg.n_i} + {t['semantic_frames'] - 1} x {cfg.n_p}"],
         ["LM sequence (with specials)", t["lm_sequence_tokens"]],
         ["bits per clip (tokens x log2 codebook)", t["bits_per_clip"]],
         ["pixel bits (T x H x W x 3 x 8)", t["pixel_bits"]], ["compression vs pixels", f"{t['ratio_pixels']:.0f}x"],
         ["float-feature bits (K x h*w x D x 32)", t["feature_bits"]],
         ["compression vs semantic features", f"{t['ratio_features']:.0f}x"],
         ["normalised feature MSE (held-out, mean)", float(np.mean(t["mse_per_clip"]))],
         ["same, predicting the mean training clip", float(np.mean(t["mean_clip_mse_per_clip"]))],
         ["tokenizer error / mean-clip error",
          float(np.mean(t["mse_per_clip"]) / np.mean(t["mean_clip_mse_per_clip"]))],
         ["MSE by semantic frame", [round(x, 3) for x in t["mse_per_semantic_frame"]]],
         ["codes used / codebook", f"{t['codes_used']} / {t['codebook_size']}"],
         ["code perplexity", t["perplexity"]], ["pixel MSE of tokenizer+detokenizer reconstructions",
                                                res["recon_pixel_mse"]]])
        + "\n\nThe paper's ~14,000x is stated without its derivation; ours is defined here: bits of the raw uint8 "
          "pixels (and of the float32 semantic features the tokenizer actually compresses) over bits of the "
          "codes. The feature MSE is on per-channel normalised features, so 1.0 is the error of predicting each "
          "channel's mean; LanDiff's maintainers report ~0.3 at their scale. Background cells look alike in every "
          "clip, so the mean clip already scores well on it; the claim therefore tests the error relative to the "
          "mean clip.")
    rows = []
    for k, chance in CHANCE.items():
        rows.append([k, chance, np.mean(res["judge_real"][k]), np.mean(res["judge_reconstructed"][k]),
                     str(_acc(res["judge_generated"][k])), np.mean(res["judge_null"][k])])
    sections.append("## Caption following (held-out judges)\n\n" + markdown_table(
        ["attribute", "chance", "real clips (ceiling)", "reconstructed", "generated from caption [95% CI]",
         "generated from null text"], rows)
        + f"\n\nJudges: small CNNs trained on {cfg.n_judge} real clips of their own seed, reading the first "
          f"{cfg.judge_frames} frames. 'Reconstructed' runs real held-out clips through encoder -> tokenizer -> "
          "detokenizer (the ceiling of the generation path); 'generated' asks the LM for the held-out clips' "
          f"captions and motion scores (CFG scale {cfg.cfg_scale}); 'null' uses the learned null text embedding.")
    sw = res["motion_sweep"]
    meas = np.asarray(sw["measured"])
    sections.append("## Motion control\n\n" + markdown_table(
        ["training quantile", "requested motion", "measured (mean over captions)"],
        [[q, lv, m] for q, lv, m in zip(sw["quantiles"], sw["levels"], meas.mean(0), strict=True)])
        + f"\n\nEach of {meas.shape[0]} held-out captions is generated at every requested level (same seed per "
          "level), so the caption's speed word cannot explain the trend. On the caption-following clips (requested "
          f"= the held-out clip's own score) Spearman rho = "
          f"{spearman_ci(res['requested_motion_gen'], res['generated_motion'])}.")
    dr = res["drift"]
    lg = res["long"]
    sections.append("## Long video, chunk by chunk\n\n"
                    f"{len(lg['captions'])} videos of {lg['frames']} frames in {lg['chunks']} chunks of "
                    f"{cfg.clip_frames} frames; each chunk after the first starts from the last {cfg.prefix_frames} "
                    "frames of the previous one (their tokens forced in the LM, their pixels a clean prefix of the "
                    "detokenizer).\n\n" + markdown_table(
                        ["chunk", "caption agreement (colour, shape)", "motion score"],
                        [[i + 1, a, m] for i, (a, m) in enumerate(zip(dr["agreement_by_chunk"], dr["motion_by_chunk"],
                                                                     strict=True))])
                    + f"\n\nDrift bound (stated before the run): agreement drops by at most {cfg.drift_bound} from "
                      "the first to the last chunk (upper end of the paired bootstrap interval) and the motion "
                      "score changes by at most 2x (interval of the mean log ratio inside ±log 2). Measured drop "
                      f"{_est(dr['agreement_drop'])}, mean log motion ratio {_est(dr['motion_log_ratio'])}: "
                      + (f"**{'within' if dr['within_bound'] else 'NOT within'} the bound**." if dr["measurable"]
                         else "**not measurable**: the first chunk does not follow its caption above chance "
                              f"(agreement {_est(dr['first_chunk_agreement'])} vs. chance 0.25), so an absent drop "
                              "shows nothing."))
    gifs = sorted(p.name for p in run.path("media").glob("*.gif")) if run.path("media").exists() else []
    if gifs:
        sections.append("## Example GIFs\n\n" + "\n".join(
            f"- `{g}`: ![{g}](media/{g})" for g in gifs))
    scale_note = (
        "Everything is small: 32x32 single-object procedural clips instead of 480x720 web video; a frozen random "
        "conv net (or EfficientNet-Lite0) instead of Theia as the semantic encoder; a "
        f"{cfg.tok_layers}+{cfg.tok_layers}-layer tokenizer of width {cfg.tok_width} with {cfg.n_i}+{cfg.n_p}/frame "
        f"queries and {cfg.codebook_size} codes instead of 12+12 layers of 768, 330+74/frame and 2,048; a "
        f"{cfg.lm_layers}x{cfg.lm_width} LM instead of 24x2048; frozen MiniLM per-token embeddings instead of Flan-T5-XXL; a "
        "detokenizer base model trained here (no pretrained CogVideoX) sampled by rectified-flow Euler steps "
        "instead of DPM++ on ZeroSNR DDPM; no detokenizer CFG. The paper's VBench comparison is not reproducible "
        "offline; the claims test the mechanisms: compression with low reconstruction error, caption following, "
        "motion control, and chunked generation without drift.")
    run.finish(claims, results=res, sections=sections, scale_note=scale_note, title="LanDiff", paper=paper)


def _est(d: dict) -> str:
    def f(x):
        return "nan" if x is None else f"{x:.3g}"

    return f"{f(d['value'])} [{f(d['lo'])}, {f(d['hi'])}]"
