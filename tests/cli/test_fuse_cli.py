"""``medfuse fuse`` on the shipped demo, the stroke NIfTI set, 2D folders and bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from medfuse.cli import cli
from medfuse.io import load_volume
from tests.helpers import cli_env, run_cli
from tests.helpers import random_ecfusion as _random_ecfusion

REPO = Path(__file__).resolve().parents[2]


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["fuse", *args])


def _nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def _one_error_line(res, *fragments: str) -> None:
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("medfuse: error: "), res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[-1], lines[-1]
    assert res.exception is None or isinstance(res.exception, SystemExit)


# --------------------------------------------------------------------------------------------
# the README's first command: the demo pair shipped inside the package


@pytest.mark.slow
def test_demo_runs_from_the_package(tmp_path: Path):
    out = tmp_path / "out"
    res = run_cli("fuse", "--demo", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "registration (rigid, different frames of reference)" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".medfuse-output",
        "dicom",
        "fused.nii.gz",
        "preview.png",
        "review.png",
        "run.json",
        "transform.tfm",
    ]
    assert len(list((out / "dicom").glob("*.dcm"))) == 20
    run = json.loads((out / "run.json").read_text())
    mi = run["registration"]["mutual_information_nats"]
    assert mi["after"] > 1.5 * mi["before"]
    assert Path(run["inputs"][0]["path"]).parent.name == "demo"
    # the demo files are compressed losslessly and credited
    demo = REPO / "medfuse" / "data" / "demo"
    ds = pydicom.dcmread(next((demo / "ct").glob("*.dcm")), stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLSLossless
    assert "CC BY 4.0" in (demo / "README.md").read_text()
    size = sum(p.stat().st_size for p in demo.rglob("*") if p.is_file())
    assert size < 8e6
    # refuses to overwrite, then does with --overwrite (quietly)
    res = run_cli("fuse", "--demo", "-o", str(out), "--method", "average", "-q")
    assert res.returncode == 5 and "use --overwrite" in res.stderr
    res = run_cli(
        "fuse",
        "--demo",
        "-o",
        str(out),
        "--method",
        "average",
        "-q",
        "--overwrite",
        "--format",
        "nifti",
        "--transform",
        str(out / "transform.tfm"),
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".medfuse-output", "fused.nii.gz", "run.json", "transform.tfm"]
    run2 = json.loads((out / "run.json").read_text())
    assert run2["registration"]["kind"] == "file"
    assert np.allclose(
        run2["registration"]["matrix_ras"], run["registration"]["matrix_ras"], atol=1e-5
    )


# --------------------------------------------------------------------------------------------
# the stroke set: FLAIR colourised as the functional input over T1


def test_stroke_flair_colourised_over_t1(tmp_path: Path, stroke_dir: Path):
    out = tmp_path / "out"
    res = _invoke(
        str(stroke_dir / "FLAIR.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "-o",
        str(out),
        "--functional",
        "a",
        "--method",
        "dwt",
        "--palette",
        "HOT_IRON",
        "-q",
        "--format",
        "dicom,nifti,png",
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".medfuse-output",
        "dicom",
        "fused.nii.gz",
        "preview.png",
        "review.png",
        "run.json",
        "transform.tfm",
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["reference_grid"] == "b" and run["registration"]["kind"] == "none"
    assert run["functional"] == {"a": True, "b": False} and run["palette"] == "HOT_IRON"
    img = nib.load(str(out / "fused.nii.gz"))
    assert img.header.get_data_dtype().names == ("R", "G", "B")  # RGB24 voxels
    t1 = load_volume(stroke_dir / "T1.nii.gz")
    assert np.allclose(img.affine, t1.affine.numpy())
    vol = load_volume(out / "fused.nii.gz")
    assert tuple(vol.shape) == (3, 124, 160, 140)
    rgb = vol.as_tensor() / 255.0
    # the chroma is the palette's colouring of the windowed FLAIR: hue where FLAIR is bright
    from medfuse.transforms import Window
    from medfuse.transforms.colour import colourise, rgb_to_ycbcr

    flair = Window("mr")(load_volume(stroke_dir / "FLAIR.nii.gz"))
    want = rgb_to_ycbcr(colourise(flair.as_tensor().permute(3, 0, 1, 2), "HOT_IRON"))[:, 1:]
    got = rgb_to_ycbcr(rgb.permute(3, 0, 1, 2))[:, 1:]
    brain = (flair.as_tensor()[0].permute(2, 0, 1) > 0.2)[:, None].expand_as(got)
    assert (got - want).abs()[brain].median() < 0.02
    assert float(rgb[0].mean()) > float(rgb[2].mean())  # hot iron: red dominates
    # the RGB Secondary Capture holds the NIfTI's pixels and validates
    from medfuse.transforms import ExtractSlices

    sl = ExtractSlices("axial")(vol).as_tensor().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 140
    for k in (0, 70, 139):
        ds = pydicom.dcmread(files[k])
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert np.array_equal(ds.pixel_array, sl[k])
    assert shutil.which("dciodvfy"), "dciodvfy missing: bash scripts/setup.sh --test installs it"
    r = subprocess.run(["dciodvfy", str(files[70])], capture_output=True, text=True)
    assert not [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")], r.stderr
    preview = np.asarray(Image.open(out / "preview.png"))
    assert preview.ndim == 3 and preview.shape[-1] == 3


def test_stroke_pair_as_dicom_without_dicom_inputs(tmp_path: Path, stroke_dir: Path):
    """--format dicom with NIfTI inputs: a new study, still a valid SC series."""
    out = tmp_path / "out"
    res = _invoke(
        str(stroke_dir / "T2.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "-o",
        str(out),
        "--method",
        "average",
        "--format",
        "dicom",
        "--axis",
        "coronal",
        "-q",
    )
    assert res.exit_code == 0, res.output
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 160  # coronal slices of the 124x160x140 grid
    ds = pydicom.dcmread(files[0])
    assert ds.pixel_array.shape == (140, 124) and list(ds.PatientOrientation) == [
        "LH",
        "FPL",
    ]  # T1 is oblique
    r = subprocess.run(["dciodvfy", str(files[0])], capture_output=True, text=True)
    assert not [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")], r.stderr


# --------------------------------------------------------------------------------------------
# paper-style 2D folders


def _subset(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True)
    for n in names:
        os.symlink(src / n, dst / n)
    return dst


def test_folders_of_2d_pairs_colour_task_and_evaluate(tmp_path: Path, harvard_dir: Path):
    src = harvard_dir / "PET-MRI"
    names = sorted(p.name for p in (src / "PET").glob("*.png"))[:4]
    a = _subset(src / "PET", tmp_path / "PET", names)
    b = _subset(src / "MRI", tmp_path / "MRI", names)
    out = tmp_path / "fused_lap"
    res = _invoke(str(a), str(b), "-o", str(out), "--method", "laplacian", "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "fused").iterdir()) == names
    assert sorted(p.name for p in (out / "rgb").iterdir()) == names
    y = np.asarray(Image.open(out / "fused" / names[0]))
    rgb = np.asarray(Image.open(out / "rgb" / names[0]))
    assert y.shape == (256, 256) and y.dtype == np.uint8 and rgb.shape == (256, 256, 3)
    # the RGB recombination has the fused luma (up to rounding and gamut clipping)
    from medfuse.metrics import to_luma

    assert np.median(np.abs(to_luma(rgb) - y)) <= 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "pet-mri" and run["colour_task"] is True
    ev = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--a",
            str(a),
            "--b",
            str(b),
            "--fused",
            f"laplacian={out / 'fused'}",
            "-o",
            str(tmp_path / "ev"),
            "--no-plots",
            "--metrics",
            "MI,Qabf",
        ],
    )
    assert ev.exit_code == 0, ev.output
    assert "laplacian" in ev.output


def test_folders_gray_task_and_mismatched_names(tmp_path: Path, harvard_dir: Path):
    src = harvard_dir / "CT-MRI"
    names = sorted(p.name for p in (src / "CT").glob("*.png"))[:3]
    a = _subset(src / "CT", tmp_path / "CT", names)
    b = _subset(src / "MRI", tmp_path / "MRI", names[:2])
    out = tmp_path / "out"
    res = _invoke(str(a), str(b), "-o", str(out), "--method", "average")
    assert res.exit_code == 3
    _one_error_line(res, "image names do not match", names[2][:-4])
    _nothing_written(out)
    os.symlink(src / "MRI" / names[2], b / names[2])
    res = _invoke(str(a), str(b), "-o", str(out), "--method", "guided-filter", "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [".medfuse-output", "fused", "review.png",
                                                     "run.json"]
    fused = np.asarray(Image.open(out / "fused" / names[0]))
    ct = np.asarray(Image.open(a / names[0]).convert("L"))
    assert fused.shape == ct.shape and fused.std() > 10


def test_network_path_on_2d_pairs_with_random_weights(tmp_path: Path, harvard_dir: Path):
    w = _random_ecfusion(tmp_path / "rand.safetensors", "spect-mri", seed=0)
    src = harvard_dir / "SPECT-MRI"
    names = sorted(p.name for p in (src / "SPECT").glob("*.png"))[:3]
    a = _subset(src / "SPECT", tmp_path / "SPECT", names)
    b = _subset(src / "MRI", tmp_path / "MRI", names)
    out = tmp_path / "out"
    res = _invoke(str(a), str(b), "-o", str(out), "--method", "ecfusion", "--weights", str(w), "-q",
                  "--gpu-precision", "fp32")
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["method"]["network"] == "ecfusion" and run["task"] == "spect-mri"
    assert run["method"]["options"]["amp"] is False
    assert len(run["method"]["weights_sha256"]) == 64
    assert len(list((out / "rgb").glob("*.png"))) == 3


def _s3imfusion_on_ct_mri_pairs(tmp_path: Path, harvard_dir: Path, weights: Path, n: int):
    """``medfuse fuse`` of the first ``n`` Harvard CT-MRI pairs with S3IMFusion ``weights``:
    ``(result, out, a, b, names)``."""
    src = harvard_dir / "CT-MRI"
    names = sorted(p.name for p in (src / "CT").glob("*.png"))[:n]
    a = _subset(src / "CT", tmp_path / "CT", names)
    b = _subset(src / "MRI", tmp_path / "MRI", names)
    out = tmp_path / "out"
    res = _invoke(str(a), str(b), "-o", str(out), "--method", "s3imfusion", "--weights",
                  str(weights), "-q")
    return res, out, a, b, names


def _shipped_s3imfusion_altered(path: Path, how) -> Path:
    """The shipped S3IMFusion CT-MRI weights with ``how(state_dict)`` applied, saved to ``path``."""
    from medfuse.nets import load_pretrained, save_weights

    net = load_pretrained("s3imfusion", task="ct-mri")
    with torch.no_grad():
        how(net.state_dict())
    save_weights(net, path, network="s3imfusion", task="ct-mri")
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("nan-weight", "holds NaN or infinite values"),  # a diverged training run's weights
    ("huge-weight", "the network's output holds NaN or infinite values"),  # finite, overflowing
])
def test_non_finite_weights_or_output_stop_the_run(tmp_path: Path, harvard_dir: Path, case: str,
                                                   message: str):
    """Weights holding NaN are refused when read; finite weights whose output overflows are caught
    before anything is written (NaN would be written as black pixels). Exit 6, one line naming the
    weights file, no output."""
    def poison(state):
        w = state["hybrid.weight"]
        if case == "nan-weight":
            w[0, 0, 0, 0] = float("nan")
        else:
            w.mul_(1e38)

    w = _shipped_s3imfusion_altered(tmp_path / f"{case}.safetensors", poison)
    res, out, *_ = _s3imfusion_on_ct_mri_pairs(tmp_path, harvard_dir, w, 2)
    assert res.exit_code == 6, res.output
    _one_error_line(res, w.name, message)
    _nothing_written(out)


@pytest.mark.slow
def test_network_path_on_the_demo_volumes_with_random_weights(tmp_path: Path):
    w = _random_ecfusion(tmp_path / "rand.safetensors", "ct-mri", seed=1)
    out = tmp_path / "out"
    res = run_cli(
        "fuse",
        "--demo",
        "-o",
        str(out),
        "--method",
        "ecfusion",
        "--weights",
        str(w),
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "-q",
    )
    assert res.returncode == 0, res.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["method"]["method"] == "ecfusion" and run["batch_size"] == 4
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 20
    assert pydicom.dcmread(files[10]).pixel_array.std() > 1


# --------------------------------------------------------------------------------------------
# bad inputs: one clear line, the right exit code, nothing half-written


def test_missing_input(tmp_path: Path, stroke_dir: Path):
    out = tmp_path / "out"
    res = _invoke(str(tmp_path / "nope"), str(stroke_dir / "T1.nii.gz"), "-o", str(out))
    assert res.exit_code == 3
    _one_error_line(res, "nope: no such file or folder")
    _nothing_written(out)
    res = _invoke(str(stroke_dir / "T1.nii.gz"), "-o", str(out))
    assert res.exit_code == 2 and "give two inputs" in res.output


def test_2d_and_3d_input(tmp_path: Path, phantom_dir: Path, stroke_dir: Path):
    one_slice = sorted((phantom_dir / "CT_every4th").glob("*.dcm"))[40]
    out = tmp_path / "out"
    res = _invoke(str(one_slice), str(stroke_dir / "T1.nii.gz"), "-o", str(out))
    assert res.exit_code == 4
    _one_error_line(res, one_slice.name, "is a 2D image")
    _nothing_written(out)


def test_fields_of_view_do_not_overlap(tmp_path: Path, shared_data: Path):
    vhp = shared_data / "volumes" / "vhp_male_head"
    out = tmp_path / "out"
    # the CT slab at the vertex does not meet the MR in world space
    res = _invoke(
        str(vhp / "vm_head_ct.mha"),
        str(vhp / "vm_head_mri.mha"),
        "-o",
        str(out),
        "--register",
        "none",
        "--method",
        "average",
    )
    assert res.exit_code == 4
    _one_error_line(res, "vm_head_ct.mha", "fields of view do not overlap after registration")
    _nothing_written(out)
    # nor after a given transform that moves it 1 m away
    from medfuse.registration import write_transform

    far = np.eye(4)
    far[2, 3] = 1000.0
    tfm = write_transform(far, tmp_path / "far.tfm")
    res = _invoke(
        str(vhp / "vm_head_mri.mha"),
        str(vhp / "vm_head_mri.mha"),
        "-o",
        str(out),
        "--transform",
        str(tfm),
        "--method",
        "average",
    )
    assert res.exit_code == 4
    _one_error_line(res, "do not overlap after registration")
    _nothing_written(out)


def test_unwritable_output_folder(tmp_path: Path, stroke_dir: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "out"
    res = _invoke(str(stroke_dir / "T2.nii.gz"), str(stroke_dir / "T1.nii.gz"), "-o", str(out))
    assert res.exit_code == 5
    _one_error_line(res, str(out), "is not a folder")
    assert blocker.read_text() == "x"
    if os.geteuid() != 0:  # root writes anywhere; the read-only folder case needs a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        res = _invoke(
            str(stroke_dir / "T2.nii.gz"), str(stroke_dir / "T1.nii.gz"), "-o", str(ro / "out")
        )
        assert res.exit_code == 5
        _one_error_line(res, "not writable")
        assert list(ro.iterdir()) == []


def test_network_method_without_weights(tmp_path: Path, stroke_dir: Path, monkeypatch):
    import medfuse.nets.pretrained as pretrained

    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", empty)  # an install without shipped weights
    out = tmp_path / "out"
    res = _invoke(
        str(stroke_dir / "T2.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "-o",
        str(out),
        "--method",
        "ecfusion",
        "--task",
        "ct-mri",
    )
    assert res.exit_code == 6
    _one_error_line(res, "no shipped weights for ecfusion on ct-mri")
    _nothing_written(out)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    res = _invoke(
        str(stroke_dir / "T2.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "-o",
        str(out),
        "--method",
        "ecfusion",
        "--weights",
        str(bad),
    )
    assert res.exit_code == 6
    _one_error_line(res, "bad.pt", "not a readable PyTorch checkpoint")
    _nothing_written(out)


def test_bad_options(tmp_path: Path, stroke_dir: Path):
    out = tmp_path / "out"
    args = [str(stroke_dir / "T2.nii.gz"), str(stroke_dir / "T1.nii.gz"), "-o", str(out)]
    res = _invoke(*args, "--window-a", "40:abc")
    assert res.exit_code == 3
    _one_error_line(res, "bad window '40:abc'")
    res = _invoke(*args, "--format", "dicom,jpeg")
    assert res.exit_code == 3
    _one_error_line(res, "--format")
    res = _invoke(*args, "--device", "cuda:7") if not torch.cuda.is_available() else None
    if res is not None:
        assert res.exit_code == 3
        _one_error_line(res, "CUDA is not available")
    _nothing_written(out)


def test_readme_first_command_is_the_demo():
    text = (REPO / "README.md").read_text()
    first = text.split("```bash", 1)[1].split("```", 1)[0].strip()
    assert first == "bash scripts/setup.sh && medfuse fuse --demo -o out/"


def test_unknown_method_lists_the_registry(tmp_path: Path, stroke_dir: Path):
    out = tmp_path / "out"
    res = _invoke(
        str(stroke_dir / "T2.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "-o",
        str(out),
        "--method",
        "wavelet-magic",
    )
    assert res.exit_code == 3
    _one_error_line(res, "unknown fusion method 'wavelet-magic'", "guided-filter", "ecfusion")
    _nothing_written(out)


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_terminated_run_leaves_nothing(tmp_path: Path, phantom_dir: Path, signame: str):
    """SIGTERM or Ctrl-C while loading the phantom pair: exit 143 / 130, no output or temporary
    folder."""
    import signal
    import time

    signum = getattr(signal, signame)

    out = tmp_path / "out"
    env = cli_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medfuse",
            "fuse",
            str(phantom_dir / "CT_every4th"),
            str(phantom_dir / "MR_T2"),
            "-o",
            str(out),
            "--method",
            "average",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait for a state, not a moment: the temporary output folder exists only after the SIGTERM
    # handler is installed, so the signal then always meets it (however loaded the machine).
    deadline = time.time() + 900  # a hung run fails here instead of hanging the suite
    while not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out_text, err_text = proc.communicate()
            raise AssertionError(f"the run never started writing: {err_text[-2000:]}")
        time.sleep(0.2)
    proc.send_signal(signum)
    _, err_text = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err_text[-2000:]
    assert "Traceback" not in err_text and "Aborted" not in err_text
    _nothing_written(out)


def test_s3imfusion_path_on_2d_pairs_with_random_weights(tmp_path: Path, harvard_dir: Path):
    from medfuse.nets import get_network, save_weights

    torch.manual_seed(0)
    net = get_network("s3imfusion").eval()
    w = save_weights(net, tmp_path / "s3im.safetensors", "s3imfusion", task="ct-mri")
    res, out, a, b, names = _s3imfusion_on_ct_mri_pairs(tmp_path, harvard_dir, w, 3)
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(out / "fused" / names[0])).astype(np.float32) / 255.0
    xa = torch.from_numpy(np.asarray(Image.open(a / names[0]).convert("L")) / 255.0).float()
    xb = torch.from_numpy(np.asarray(Image.open(b / names[0]).convert("L")) / 255.0).float()
    with torch.inference_mode():
        want = ((net(xa[None, None] * 2 - 1, xb[None, None] * 2 - 1) + 1) / 2).clamp(0, 1)
    assert np.abs(got - want[0, 0].numpy()).max() <= 1 / 255 + 1e-6
    assert json.loads((out / "run.json").read_text())["method"]["network"] == "s3imfusion"
