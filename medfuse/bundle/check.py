"""Check a bundle against the weights it was made from (``scripts/make_bundles.py --check``)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["bundle_problems"]

_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "models/model.pt",
    "docs/README.md",
    "LICENSE",
)


def bundle_problems(bundle_dir: str | Path, weights: str | Path) -> list[str]:
    """What is wrong with ``bundle_dir`` as the bundle of ``weights`` (empty when it matches).

    Checks: every bundle file present; metadata valid against the shipped schema and recording
    the weights' SHA-256, network and task; ``models/model.pt`` (read with ``weights_only``) holds
    exactly the weights' tensors; ``configs/inference.json`` is what :func:`export_bundle` writes
    for these weights now.
    """
    import torch

    from medfuse.nets import NETWORKS
    from medfuse.nets.pretrained import read_weights, sha256

    from .export import inference_config
    from .schema import metadata_errors

    root, weights = Path(bundle_dir), Path(weights)
    missing = [f for f in _FILES if not (root / f).is_file()]
    if missing:
        return [f"{root}: missing {', '.join(missing)}"]
    problems: list[str] = []
    meta = json.loads((root / "configs/metadata.json").read_text())
    problems += [f"{root}/configs/metadata.json: {e}" for e in metadata_errors(meta)]
    state, wmeta = read_weights(weights)
    rec = meta.get("medfuse", {})
    digest = sha256(weights)
    if rec.get("weights_sha256") != digest:
        problems.append(
            f"{root}: made from weights {rec.get('weights_sha256')}, {weights.name} is {digest}"
        )
    for key in ("network", "task"):
        if (rec.get(key) or None) != (wmeta.get(key) or None):
            problems.append(
                f"{root}: {key} {rec.get(key)!r} differs from the weights' {wmeta.get(key)!r}"
            )
    model = torch.load(root / "models/model.pt", map_location="cpu", weights_only=True)
    if set(model) != set(state):
        problems.append(f"{root}/models/model.pt: tensor names differ from {weights.name}")
    else:
        bad = [
            k
            for k in state
            if model[k].dtype != state[k].dtype or not torch.equal(model[k], state[k])
        ]
        if bad:
            problems.append(
                f"{root}/models/model.pt: {len(bad)} tensors differ from {weights.name} "
                f"(first {bad[0]})"
            )
    name = wmeta.get("network") or rec.get("network") or ""
    if name in NETWORKS:
        want = inference_config(NETWORKS[name].replace(":", "."), dict(wmeta.get("kwargs") or {}),
                                wmeta.get("task") or None)
        if json.loads((root / "configs/inference.json").read_text()) != want:
            problems.append(
                f"{root}/configs/inference.json: differs from what export-bundle writes now"
            )
    return problems
