"""Known Kinetics checkpoints, as data: where to get them, how to check them, how to feed them.

Each :class:`PretrainedWeights` entry records the source (url and sha256 where published),
the container format and the snl_video architecture it belongs to, the class count, and
its :class:`~snl_video.inputspec.InputSpec` (the clip the network was trained and
evaluated on: frames, stride, resize, crop, value scale, mean/std). Inference and
``eval --weights`` feed the network from that spec (:func:`eval_transform_params` returns
it), so nobody copies mean/std by hand.

Sources of the facts below (checked against the installed packages where possible):
torchvision ``torchvision/models/video/resnet.py`` (urls, acc@1, protocol) and
``transforms/_presets.py`` (``VideoClassification`` mean/std/resize/crop); pytorchvideo
``pytorchvideo/models/hub/resnet.py`` (urls, top-1 in the docstrings) and its model zoo
page (8x8 clips, 3 crops x 10 clips); 3D-ResNets-PyTorch's README and code (Google Drive
only, preprocessing).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ..inputspec import (
    HARA_ACTIVITYNET_MEAN,
    HARA_KINETICS_MEAN,
    HARA_KINETICS_STD,
    TORCHVISION_KINETICS_MEAN,
    TORCHVISION_KINETICS_STD,
    PYTORCHVIDEO_KINETICS_MEAN,
    PYTORCHVIDEO_KINETICS_STD,
    TORCHVISION_IMAGENET_MEAN,
    TORCHVISION_IMAGENET_STD,
    CAFFE_IMAGENET_BGR_MEAN,
    InputSpec,
)
from .class_names import IMAGENET1K, KINETICS400, KINETICS700
from .errors import WeightsError
from .formats import KNOWN_FORMATS, FormatName

__all__ = [
    "InputSpec",
    "ClipSpec",
    "PretrainedWeights",
    "EvalTransformParams",
    "WEIGHTS",
    "get_weights",
    "list_weights",
    "eval_transform_params", "WEIGHTS_BY_NAME",
    "entry_for_file",
]

_HEX = re.compile(r"^[0-9a-f]+$")


#: Deprecated aliases of :class:`~snl_video.inputspec.InputSpec` (one type for every input
#: spec); kept importable for code written against earlier releases.
ClipSpec = InputSpec
EvalTransformParams = InputSpec


@dataclass(frozen=True)
class PretrainedWeights:
    """One known checkpoint.

    ``sha256`` is the full hex digest, or its leading hex digits when only a prefix is
    published (torchvision file names embed the first 8), or ``None`` when nothing is
    published (then downloads are not verified and a warning says so). ``url`` is ``None``
    for files that cannot be fetched directly (Google Drive): those are used through the
    offline path (put the file in the cache directory under ``file_name``).
    """

    name: str
    url: str | None
    sha256: str | None
    file_name: str
    format: FormatName
    architecture: str
    num_classes: int
    dataset: str
    input_spec: InputSpec
    reported_top1: float | None
    protocol: str
    notes: str = ""
    #: Model options the checkpoint needs (``build_model(architecture, **model_options)``);
    #: ``build_model(pretrained=<this name>)`` applies them when not given.
    model_options: tuple[tuple[str, Any], ...] = ()
    #: Class names in the order of the checkpoint's head (``None`` where no verified order
    #: is published); see :mod:`snl_video.weights.class_names` for how each was checked.
    class_names: tuple[str, ...] | None = None
    #: The video-level evaluation protocol ``predict`` / ``eval --weights`` default to:
    #: uniform clips x spatial crops per video (``protocol`` describes the published one).
    eval_num_clips: int = 10
    eval_num_crops: Literal[1, 3] = 3
    #: Other registered architectures the file loads into (2-D ImageNet weights inflate into
    #: several video trunks): ``build_model(<one of them>, pretrained=<this name>)`` is allowed.
    also_fits: tuple[str, ...] = ()
    #: The non-local placement the checkpoint's blocks need (a placement spec, see
    #: :mod:`snl_video.models.placement`); ``build_model(pretrained=<this name>)`` places it
    #: when ``nonlocal_blocks`` is not given.
    nonlocal_blocks: Mapping[str, Any] | None = None
    #: Model options that make the network score as the upstream model does at test time
    #: (pytorchvideo's ResNet-50s: their head pools (T, 7, 7) windows, so at the 256² test crop
    #: it averages four window scores, not one global average). The inference loader builds
    #: with them; fine-tuning does not (they change nothing at the 224² training crop).
    inference_options: tuple[tuple[str, Any], ...] = ()

    @property
    def clip(self) -> InputSpec:
        """Deprecated name of :attr:`input_spec`."""
        return self.input_spec

    @property
    def sha256_is_prefix(self) -> bool:
        return self.sha256 is not None and len(self.sha256) < 64


_PTV_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
_PTV_CLIP = InputSpec(
    num_frames=8, sampling_stride=8, crop_size=256, resize=256, value_scale=1, mean=PYTORCHVIDEO_KINETICS_MEAN,
    std=PYTORCHVIDEO_KINETICS_STD,
)
_PTV_PROTOCOL = "Kinetics-400 val, 3 spatial crops x 10 temporal clips of 8x8, short side 256 (pytorchvideo model zoo)"
#: pytorchvideo's hub ResNet-50 heads: AvgPool3d((T, 7, 7), stride 1), proj per window, global average of the scores.
_PTV_R50_HEAD: tuple[tuple[str, Any], ...] = (("head_window", (7, 7)),)

_TV_CLIP = InputSpec(
    num_frames=16,
    sampling_stride=1,
    crop_size=112,
    resize=(128, 171),
    value_scale=1,
    mean=TORCHVISION_KINETICS_MEAN,
    std=TORCHVISION_KINETICS_STD,
    fps=15.0,
)
_TV_PROTOCOL = (
    "Kinetics-400 val, video-level: 5 clips per video of 16 frames at 15 fps, resize 128x171, "
    "centre crop 112 (torchvision weights meta)"
)


def _kinetics400(arch: str, tag: str, file_name: str, *, url: str | None, sha256: str | None, format: FormatName,
                 input_spec: InputSpec, top1: float | None, protocol: str, notes: str,
                 class_names: tuple[str, ...] | None = KINETICS400, **extra: Any) -> PretrainedWeights:
    """An entry with a 400-class Kinetics-400 head (in the class order of :data:`KINETICS400`
    unless ``class_names`` says otherwise), named ``<arch>.<tag>_k400``: each call states only
    what differs between the entries."""
    return PretrainedWeights(
        name=f"{arch}.{tag}_k400", url=url, sha256=sha256, file_name=file_name, format=format, architecture=arch,
        num_classes=400, dataset="kinetics400", input_spec=input_spec, reported_top1=top1, protocol=protocol,
        class_names=class_names, notes=notes, **extra,
    )


def _pytorchvideo_hub(arch: str, file_name: str, *, top1: float, notes: str, format: FormatName = "pytorchvideo",
                      input_spec: InputSpec = _PTV_CLIP, protocol: str = _PTV_PROTOCOL,
                      **extra: Any) -> PretrainedWeights:
    """A pytorchvideo model-zoo checkpoint (``<arch>.pytorchvideo_k400``, no published checksum)."""
    return _kinetics400(arch, "pytorchvideo", file_name, url=f"{_PTV_ROOT}/{file_name}", sha256=None, format=format,
                        input_spec=input_spec, top1=top1, protocol=protocol, notes=notes, **extra)


def _torchvision_hub(arch: str, weights: str, url_hash: str, *, top1: float, clips: int,
                     format: FormatName = "torchvision_video",
                     input_spec: InputSpec = _TV_CLIP, protocol: str = _TV_PROTOCOL) -> PretrainedWeights:
    """A torchvision ``<weights>.KINETICS400_V1`` file (its sha256 prefix is in the file name)."""
    file_name = f"{arch}-{url_hash}.pth"
    return _kinetics400(arch, "torchvision", file_name, url=f"https://download.pytorch.org/models/{file_name}",
                        sha256=url_hash, format=format, input_spec=input_spec, top1=top1, protocol=protocol,
                        notes=f"torchvision {weights}.KINETICS400_V1; sha256 prefix from the file name.",
                        eval_num_clips=clips, eval_num_crops=1)


_HARA_GDRIVE = (
    "Published only on the authors' Google Drive folder (linked from the 3D-ResNets-PyTorch README), "
    "with no per-file URL: download it in a browser and put it in the weights cache directory."
)


# 2017 release: 0-255 input minus the ActivityNet mean, no std; 2020: [0, 1] input, Kinetics mean/std.
_HARA_2017_CLIP = InputSpec(
    num_frames=16, sampling_stride=1, crop_size=112, resize=112, value_scale=255,
    mean=HARA_ACTIVITYNET_MEAN, std=(1.0, 1.0, 1.0),
)  # fmt: skip
_HARA_2020_CLIP = InputSpec(
    num_frames=16, sampling_stride=1, crop_size=112, resize=112, value_scale=1,
    mean=HARA_KINETICS_MEAN, std=HARA_KINETICS_STD,
)  # fmt: skip
_HARA_2020_PROTOCOL = "not recorded here (see Kataoka et al., arXiv:2004.04968)"


def _hara2017(depth: int) -> PretrainedWeights:
    """The 2017 release's ``resnet-<depth>-kinetics.pth``: ResNet-18/34 use shortcut A, 50 shortcut B."""
    shortcut = "A" if depth < 50 else "B"
    return _kinetics400(
        f"r3d{depth}", "hara2017", f"resnet-{depth}-kinetics.pth", url=None, sha256=None, format="hara2017",
        input_spec=_HARA_2017_CLIP, top1=None, protocol="not recorded here (see Hara et al., CVPR 2018)",
        notes=f"3D-ResNets-PyTorch 2017 release, shortcut {shortcut}"
        + (" (zero padding: the file has no downsample tensors)" if shortcut == "A" else "")
        + "; 0-255 input minus the ActivityNet mean, no std. " + _HARA_GDRIVE,
        model_options=(("shortcut", "A"),) if shortcut == "A" else (),
        eval_num_clips=10,
        eval_num_crops=1,
    )


def _hara2020(tag: str, file_name: str, *, num_classes: int, dataset: str, notes: str,
              class_names: tuple[str, ...] | None) -> PretrainedWeights:
    """The 2020 release's ``r3d50_<K|KM>_200ep.pth`` (``r3d50.hara2020_<tag>``)."""
    return PretrainedWeights(
        name=f"r3d50.hara2020_{tag}", url=None, sha256=None, file_name=file_name, format="hara2020",
        architecture="r3d50", num_classes=num_classes, dataset=dataset, input_spec=_HARA_2020_CLIP,
        reported_top1=None, protocol=_HARA_2020_PROTOCOL, notes=notes + _HARA_GDRIVE, class_names=class_names,
        eval_num_clips=10, eval_num_crops=1,
    )


WEIGHTS: tuple[PretrainedWeights, ...] = (
    _pytorchvideo_hub("i3d_r50", "I3D_8x8_R50.pyth", top1=73.27, inference_options=_PTV_R50_HEAD,
                      notes="pytorchvideo hub i3d_r50; stem temporal kernel 5. No checksum is published."),
    _pytorchvideo_hub("slow_r50", "SLOW_8x8_R50.pyth", top1=74.58, inference_options=_PTV_R50_HEAD,
                      notes="pytorchvideo hub slow_r50 (Slow pathway of SlowFast). No checksum is published."),
    _pytorchvideo_hub("c2d_r50", "C2D_8x8_R50.pyth", top1=71.46, inference_options=_PTV_R50_HEAD,
                      notes="pytorchvideo hub c2d_r50 (2-D convs, temporal pooling after res2). No checksum is published."),
    _torchvision_hub("r3d_18", "R3D_18_Weights", "b3b3357e", top1=63.200, clips=5),
    _torchvision_hub("mc3_18", "MC3_18_Weights", "a90a0ba3", top1=63.960, clips=5),
    _torchvision_hub("r2plus1d_18", "R2Plus1D_18_Weights", "91a641e6", top1=67.463, clips=5),
    *(_hara2017(depth) for depth in (18, 34, 50)),
    _hara2020("k700", "r3d50_K_200ep.pth", num_classes=700, dataset="kinetics700", class_names=KINETICS700,
              notes="3D-ResNets-PyTorch 2020 release, Kinetics-700, 200 epochs. "),
    _hara2020("kmit", "r3d50_KM_200ep.pth", num_classes=1039, dataset="kinetics700+moments_in_time", class_names=None,
              notes="3D-ResNets-PyTorch 2020 release, Kinetics-700 + Moments in Time (1039 classes). No class order "
              "is published for the merged head (the merge script is not in 3D-ResNets-PyTorch), so no class names "
              "are given: predictions name classes class_0 ... class_1038 (or pass --class-names FILE). "),
)

# --- pkumivision/FFC (ImageNet) and BA-Transform/BAT-Video-Classification (Kinetics-400) ---------

_FFC_DRIVE = (
    "Not linked from the FFC README: the authors posted Google Drive links in pkumivision/FFC issue #1 "
    "(2021-09-22), {url}; download it in a browser and put it in the weights cache directory under this "
    "file name. They note the models were trained on MXNet recordIO files, so ImageNet accuracy drops on JPEG "
    "images, but they are good initialisations. main.py container (epoch, arch, DataParallel state_dict, "
    "best_acc1, optimizer); 2-D kernels are inflated (C2D: exact on a clip of identical frames)."
)
# The per-image ImageNet recipe of FFC's main.py, on the FFC-C2D Kinetics clip (8 frames, stride 8,
# the BAT paper's baseline recipe, which the FFC paper shares).
_FFC_CLIP = InputSpec(
    num_frames=8, sampling_stride=8, crop_size=224, resize=256, value_scale=1,
    mean=TORCHVISION_IMAGENET_MEAN, std=TORCHVISION_IMAGENET_STD,
)  # fmt: skip


def _ffc_imagenet(lfu: bool, url: str) -> PretrainedWeights:
    return PretrainedWeights(
        name=f"ffc_c2d_r50.ffc{'_lfu' if lfu else ''}_imagenet",
        url=None,
        sha256=None,
        file_name=f"ffc_resnet50_ratio0.25{'_lfu' if lfu else ''}.pth.tar",
        format="ffc",
        architecture="ffc_c2d_r50",
        num_classes=1000,
        dataset="imagenet",
        input_spec=_FFC_CLIP,
        reported_top1=77.8 if lfu else 77.6,
        protocol="ImageNet val, single 224 centre crop of a 256 resize (FFC README)",
        notes=f"FFC-ResNet-50, ratio 0.25{', with LFU' if lfu else ''}. " + _FFC_DRIVE.format(url=url)
        + " The file is an initialisation for fine-tuning (the head is replaced); its 1000-class ImageNet head "
        "uses torchvision's ImageNet order (FFC trains with ImageFolder).",
        model_options=(("ratio_global", 0.25), ("lfu", lfu)),
        also_fits=("ffc_i3d_r50",),
        class_names=IMAGENET1K,
    )


# RGB frames (read_mode video) in 0-255 minus [103.939, 116.779, 123.68] per channel in that order
# (Caffe's BGR means applied to RGB as the released main.py / test_models.py do), std 1.
_BAT_CLIP = InputSpec(
    num_frames=8, sampling_stride=8, crop_size=224, resize=256, value_scale=255,
    mean=CAFFE_IMAGENET_BGR_MEAN, std=(1.0, 1.0, 1.0),
)  # fmt: skip
_BAT_PROTOCOL = (
    "Kinetics-400 val, 10 clips x 3 crops, fully convolutional at short side 256 (BAT-Video-Classification README)"
)
_BAT_PLACEMENT = {"layer2": [1, 3], "layer3": [1, 3, 5]}


def _bat_video(variant: str, blocks: str, top1: float, drive: str, baidu: str) -> PretrainedWeights:
    """A BAT-Video-Classification checkpoint: ``blocks`` is "" (none), "2d" (tk=0) or "3d" (tk=4)."""
    tag = {"": "bat", "2d": "bat2d", "3d": "bat3d"}[blocks]
    placement = None
    if blocks:
        placement = {"kind": "bat", "options": {"k": 8, "tk": 4 if blocks == "3d" else 0, "ts": 4}, "positions": _BAT_PLACEMENT}
    title = variant.upper() + (f" + {blocks.upper()}-BAT" if blocks else "")
    return _kinetics400(
        f"bat_{variant}_r50", tag, f"bat_{variant}_r50{'_' + blocks + 'bat' if blocks else ''}_k400.pth.tar",
        url=None, sha256=None, format="bat_video", input_spec=_BAT_CLIP, top1=top1, protocol=_BAT_PROTOCOL,
        notes=(
            f"{title}, ResNet-50, 8 frames (released by the BAT authors). Google Drive {drive} / Baidu {baidu}: "
            "download it in a browser and put it in the weights cache directory under this file name. "
            "RGB 0-255 input minus (103.939, 116.779, 123.68), no std. No class order is published: the "
            "labels come from list files each user generates ('video_path frame_num label', README), so no "
            "class names are given (predictions name class_0 ... class_399; pass --class-names FILE)."
            + (" The blocks are placed by build_model(pretrained=<this name>) (5 BAT blocks: layer2 after 1, 3; "
               "layer3 after 1, 3, 5)." if blocks else "")
        ),
        nonlocal_blocks=placement,
        # The BAT code reads labels from list files the user generates (README: "video_path frame_num
        # label"): no class order is published, so none is claimed here.
        class_names=None,
    )


_FFC_AND_BAT: tuple[PretrainedWeights, ...] = (
    _ffc_imagenet(False, "https://drive.google.com/file/d/1bAbCJR7lNfBbF2gdREcrsjHqa8HIgI3N/view"),
    _ffc_imagenet(True, "https://drive.google.com/file/d/1egTVmTr3l2pS1lPeplRinwp1b5YjVMOU/view"),
    _bat_video("c2d", "", 72.0, "https://drive.google.com/file/d/1lH38bk2B8MVGS57uBVRJ4VP5OXMDVIvK/view",
               "https://pan.baidu.com/s/1iqCYbl_7A659NEVpHz8cSQ (code r0i2)"),
    _bat_video("i3d", "", 72.7, "https://drive.google.com/file/d/1LEc3X5sghJ0gDHHI30nolEFolY_C-Mzd/view",
               "https://pan.baidu.com/s/1AJKmk9K5Jh5SzR45Y9jMfQ (code dnwv)"),
    _bat_video("c2d", "2d", 74.6, "https://drive.google.com/file/d/15k2Qf2NPn9TWAH3CZwAtDMuCwgvfpw0i/view",
               "https://pan.baidu.com/s/1u-hTUNGBg2bGs4fBhEw66w (code inb0)"),
    _bat_video("i3d", "2d", 75.1, "https://drive.google.com/file/d/1RsexL9jE3-34CLo4ZK80gg2HZz1XcARo/view",
               "https://pan.baidu.com/s/1vpkaAqphLu8cQVS1n9t7SA (code q8d8)"),
    _bat_video("c2d", "3d", 75.5, "https://drive.google.com/file/d/1N1aTylbo2XkIeA7pGGo3E5FQNBAJCmy0/view",
               "https://pan.baidu.com/s/1Kh0uhxTJiLDpe5juGtT93Q (code rnrg)"),
)  # fmt: skip
WEIGHTS = WEIGHTS + _FFC_AND_BAT

# --- pytorchvideo SlowFast R50 / X3D and torchvision's MViT-v2-S / Swin3D-T / S3D (Kinetics-400) -----
# pytorchvideo: urls from ``pytorchvideo/models/hub/{slowfast,x3d}.py`` (``checkpoint_paths``), top-1
# from the same builders' docstrings; clips from its hub inference tutorial's per-model transform
# parameters (SlowFast 32 frames every 2nd, side and crop 256; X3D XS 4x12 / S 13x6 at 182, M 16x5 at
# 256), mean 0.45 / std 0.225 on [0, 1] pixels. pytorchvideo publishes no checksums.
# torchvision: ``torchvision.models.video.{MViT_V2_S,Swin3D_T,S3D}_Weights.KINETICS400_V1`` (url, the
# sha256 prefix in the file name, ``transforms()`` resize / crop / mean / std, ``meta`` acc@1 and the
# frame rate / clips per video / clip length its ``_docs`` give).

_PTV_NO_SHA = "No checksum is published (downloads are not verified)."


def _ptv_hub_clip(frames: int, stride: int, side: int) -> InputSpec:
    """The hub tutorial's clip of a SlowFast / X3D model: mean 0.45, std 0.225 on [0, 1] pixels."""
    return InputSpec(num_frames=frames, sampling_stride=stride, crop_size=side, resize=side, value_scale=1,
                     mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225))


def _pytorchvideo_x3d(size: str, frames: int, stride: int, side: int, top1: float) -> PretrainedWeights:
    return _pytorchvideo_hub(
        f"x3d_{size}", f"X3D_{size.upper()}.pyth", format="pytorchvideo_x3d",
        input_spec=_ptv_hub_clip(frames, stride, side), top1=top1,
        protocol=f"Kinetics-400 val, 3 spatial crops x 10 temporal clips of {frames}x{stride}, short side {side} "
        "(pytorchvideo model zoo)",
        notes=f"pytorchvideo hub x3d_{size}. " + _PTV_NO_SHA,
    )


def _torchvision_baseline(arch: str, weights: str, url_hash: str, *, frames: int, fps: float, resize: int | tuple[int, int],
                          mean: tuple[float, float, float], std: tuple[float, float, float], top1: float,
                          clips: int, level: str) -> PretrainedWeights:
    return _torchvision_hub(
        arch, weights, url_hash, format="torchvision_baseline",
        input_spec=InputSpec(num_frames=frames, sampling_stride=1, crop_size=224, resize=resize, value_scale=1,
                             mean=mean, std=std, fps=fps),
        top1=top1, clips=clips,
        protocol=f"Kinetics-400 val, {level}-level: {clips} clip{'s' if clips > 1 else ''} per video of {frames} "
        f"frames at {fps:g} fps, resize {resize if isinstance(resize, int) else 'x'.join(map(str, resize))}, "
        "centre crop 224 (torchvision weights meta)",
    )


_TWO_FAMILIES_AND_BASELINES: tuple[PretrainedWeights, ...] = (
    _pytorchvideo_hub(
        "slowfast_r50", "SLOWFAST_8x8_R50.pyth", format="pytorchvideo_slowfast", input_spec=_ptv_hub_clip(32, 2, 256),
        top1=76.4, protocol="Kinetics-400 val, 3 spatial crops x 10 temporal clips of 32x2 (slow pathway 8 frames), "
        "short side 256 (pytorchvideo model zoo)", model_options=(("setting", "8x8"),), inference_options=_PTV_R50_HEAD,
        notes="pytorchvideo hub slowfast_r50 (SlowFast 8x8 R50: alpha 4, fusion kernel 7). " + _PTV_NO_SHA,
    ),
    _pytorchvideo_x3d("xs", 4, 12, 182, 69.12),
    _pytorchvideo_x3d("s", 13, 6, 182, 73.33),
    _pytorchvideo_x3d("m", 16, 5, 256, 75.94),
    _torchvision_baseline("mvit_v2_s", "MViT_V2_S_Weights", "ae3be167", frames=16, fps=7.5, resize=256,
                          mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), top1=80.757, clips=5, level="video"),
    _torchvision_baseline("swin3d_t", "Swin3D_T_Weights", "7615ae03", frames=32, fps=15.0, resize=256,
                          mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), top1=77.715, clips=12,
                          level="video"),
    _torchvision_baseline("s3d", "S3D_Weights", "d76dad2f", frames=128, fps=15.0, resize=(256, 256),
                          mean=TORCHVISION_KINETICS_MEAN, std=TORCHVISION_KINETICS_STD, top1=68.368, clips=1,
                          level="clip"),
)  # fmt: skip
WEIGHTS = WEIGHTS + _TWO_FAMILIES_AND_BASELINES

#: Every entry of :data:`WEIGHTS` by its name: what :func:`get_weights` and :func:`list_weights`
#: read (a test may swap an entry here, e.g. for a stand-in file without the published checksum).
WEIGHTS_BY_NAME: dict[str, PretrainedWeights] = {}
for _entry in WEIGHTS:
    if _entry.name in WEIGHTS_BY_NAME:  # pragma: no cover - guarded by the registry tests
        raise RuntimeError(f"duplicate weights name {_entry.name!r} in the registry")
    WEIGHTS_BY_NAME[_entry.name] = _entry


def get_weights(name: str) -> PretrainedWeights:
    """The registry entry called ``name`` (error lists the known names)."""
    try:
        return WEIGHTS_BY_NAME[name]
    except KeyError:
        raise WeightsError(
            f"unknown pretrained weights {name!r}; known: {', '.join(sorted(WEIGHTS_BY_NAME))} "
            "(`snl-video weights list` shows them)"
        ) from None


def list_weights(pattern: str = "*") -> list[str]:
    """Names of the registry entries matching the fnmatch ``pattern``, sorted."""
    return sorted(n for n in WEIGHTS_BY_NAME if fnmatch.fnmatchcase(n, pattern))


def eval_transform_params(weights: str | PretrainedWeights) -> InputSpec:
    """The input spec (evaluation preprocessing) of a registry entry, by name or entry."""
    entry = get_weights(weights) if isinstance(weights, str) else weights
    return entry.input_spec


def entry_for_file(file_name: str, *, architecture: str, format: str) -> PretrainedWeights | None:
    """The registry entry a checkpoint file on disk stands for, so that a file is fed as its
    registry name would be: the entry whose ``file_name`` is the file's name (an upstream file
    kept under its name), else the one of the same container ``format`` that loads into
    ``architecture`` (a file of that upstream family, e.g. torchvision's ``r3d_18`` state dict
    saved under another name). ``None`` when no entry fits, or when the entries that fit
    disagree on the input's normalisation (a guess would then be arbitrary).
    """
    by_name = [e for e in WEIGHTS if e.file_name == file_name]
    if len(by_name) == 1:
        return by_name[0]
    family = [e for e in WEIGHTS if e.format == format and architecture in (e.architecture, *e.also_fits)]
    if not family:
        return None
    first = family[0].input_spec
    same = all((e.input_spec.mean, e.input_spec.std, e.input_spec.value_scale) == (first.mean, first.std,
                                                                                  first.value_scale) for e in family)
    return family[0] if same else None


def validate_entry(entry: PretrainedWeights) -> list[str]:
    """Problems with an entry's fields ([] when valid); the registry tests run it on every entry."""
    problems = []
    if entry.format not in KNOWN_FORMATS:
        problems.append(f"format {entry.format!r} is not one of {KNOWN_FORMATS}")
    if entry.sha256 is not None and not (8 <= len(entry.sha256) <= 64 and _HEX.match(entry.sha256)):
        problems.append(f"sha256 {entry.sha256!r} is not 8-64 lowercase hex digits")
    if entry.url is not None and not entry.url.startswith("https://"):
        problems.append(f"url {entry.url!r} is not https")
    if entry.url is not None and not entry.url.endswith("/" + entry.file_name):
        problems.append(f"url {entry.url!r} does not end with file_name {entry.file_name!r}")
    if "/" in entry.file_name or not entry.file_name:
        problems.append(f"file_name {entry.file_name!r} must be a bare file name")
    if entry.num_classes < 1:
        problems.append(f"num_classes {entry.num_classes}")
    c = entry.input_spec
    if c.value_scale not in (1, 255):
        problems.append(f"value_scale {c.value_scale}")
    if min(c.num_frames, c.sampling_stride, c.crop_size) < 1:
        problems.append("num_frames, sampling_stride and crop_size must be >= 1")
    if c.short_side < c.crop_size:
        problems.append(f"resize {c.resize} is smaller than crop {c.crop_size}")
    if len(c.mean) != 3 or len(c.std) != 3 or min(c.std) <= 0:
        problems.append("mean and std need 3 values, std > 0")
    if any(not (0 <= m <= c.value_scale) for m in c.mean):
        problems.append(f"mean {c.mean} outside [0, value_scale={c.value_scale}]")
    if entry.class_names is not None and (
        len(entry.class_names) != entry.num_classes or len(set(entry.class_names)) != len(entry.class_names)
    ):
        problems.append(f"{len(entry.class_names)} class names (unique: {len(set(entry.class_names))}) for "
                        f"{entry.num_classes} classes")
    if entry.eval_num_clips < 1 or entry.eval_num_crops not in (1, 3):
        problems.append(f"eval protocol {entry.eval_num_clips} clips x {entry.eval_num_crops} crops")
    if entry.reported_top1 is not None and not 0 < entry.reported_top1 < 100:
        problems.append(f"reported_top1 {entry.reported_top1}")
    return problems
