"""Checkpoint layouts as the upstream projects write them, built from their documented key names.

Used where the upstream model is not installed (3D-ResNets-PyTorch, mmaction2, PySlowFast,
Caffe2); pytorchvideo and torchvision tests build the real upstream models instead. Widths
are small to keep files tiny; the key vocabulary and block counts are the real ones.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import torch

R50_BLOCKS = (3, 4, 6, 3)
R18_BLOCKS = (2, 2, 2, 2)

# Temporal kernel of each bottleneck's first conv, per stage (res2..res5), as published:
# I3D-R50 (video-nonlocal-net / mmaction2 ``inflate=((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0))``
# with the 3x1x1 style / pytorchvideo i3d_r50), Slow-only R50 (3 in res4 and res5), C2D (none).
I3D_TEMPORAL = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
SLOW_TEMPORAL = ((1,) * 3, (1,) * 4, (3,) * 6, (3,) * 3)
C2D_TEMPORAL = ((1,) * 3, (1,) * 4, (1,) * 6, (1,) * 3)


def randomise(state: dict[str, torch.Tensor], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fresh random values for every tensor, BN statistics and counters included."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            t = torch.randn(v.shape, generator=g, dtype=v.dtype)
            out[k] = t.abs() + 0.5 if k.endswith("running_var") else t
        else:
            out[k] = torch.randint(1, 10_000, v.shape, generator=g, dtype=v.dtype)
    return out


def _bn(prefix: str, c: int) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.empty(c),
        f"{prefix}.bias": torch.empty(c),
        f"{prefix}.running_mean": torch.empty(c),
        f"{prefix}.running_var": torch.empty(c),
        f"{prefix}.num_batches_tracked": torch.zeros((), dtype=torch.long),
    }


def hara_resnet_state(
    *, blocks=R50_BLOCKS, bottleneck: bool = True, width: int = 8, num_classes: int = 400, time_kernel: int = 7
) -> dict[str, torch.Tensor]:
    """3D-ResNets-PyTorch ResNet keys (conv1, bn1, layerX.Y.convZ/bnZ, downsample.0/1, fc), shortcut B."""
    s: dict[str, torch.Tensor] = {"conv1.weight": torch.empty(width, 3, time_kernel, 7, 7), **_bn("bn1", width)}
    expansion = 4 if bottleneck else 1
    in_c = width
    for stage, n in enumerate(blocks, start=1):
        planes = width * 2 ** (stage - 1)
        for j in range(n):
            p = f"layer{stage}.{j}"
            if bottleneck:
                s[f"{p}.conv1.weight"] = torch.empty(planes, in_c, 1, 1, 1)
                s.update(_bn(f"{p}.bn1", planes))
                s[f"{p}.conv2.weight"] = torch.empty(planes, planes, 3, 3, 3)
                s.update(_bn(f"{p}.bn2", planes))
                s[f"{p}.conv3.weight"] = torch.empty(planes * 4, planes, 1, 1, 1)
                s.update(_bn(f"{p}.bn3", planes * 4))
            else:
                s[f"{p}.conv1.weight"] = torch.empty(planes, in_c, 3, 3, 3)
                s.update(_bn(f"{p}.bn1", planes))
                s[f"{p}.conv2.weight"] = torch.empty(planes, planes, 3, 3, 3)
                s.update(_bn(f"{p}.bn2", planes))
            if j == 0 and (in_c != planes * expansion or stage > 1):
                s[f"{p}.downsample.0.weight"] = torch.empty(planes * expansion, in_c, 1, 1, 1)
                s.update(_bn(f"{p}.downsample.1", planes * expansion))
            in_c = planes * expansion
    s["fc.weight"] = torch.empty(num_classes, in_c)
    s["fc.bias"] = torch.empty(num_classes)
    return randomise(s)


def sgd_state(num_params: int) -> dict:
    """An optimizer.state_dict() as torch.optim.SGD with momentum writes it."""
    return {
        "state": {i: {"momentum_buffer": torch.randn(3)} for i in range(num_params)},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 1e-3, "nesterov": False,
                          "params": list(range(num_params))}],
    }


def mmaction2_i3d_state(
    *, nonlocal_blocks: bool, width: int = 8, num_classes: int = 400, temporal=None, sub_sample: bool = False
) -> dict[str, torch.Tensor]:
    """mmaction2 ResNet3d (mmcv ConvModule: .conv / .bn) + I3DHead (cls_head.fc_cls), optional NonLocal3d.

    Non-local blocks follow mmaction2's I3D-NL configs (every other block of res3 / res4 here;
    the real configs pick blocks per stage) with mmcv's NonLocal3d: g/theta/phi 1x1x1 convs
    with bias and conv_out followed by BN3d. ``sub_sample=True`` (the published I3D-NL configs)
    wraps g and phi with their max-pool in an ``nn.Sequential``: keys ``g.0.conv`` / ``phi.0.conv``.
    """
    s: dict[str, torch.Tensor] = {"backbone.conv1.conv.weight": torch.empty(width, 3, 5, 7, 7)}
    s.update(_bn("backbone.conv1.bn", width))
    in_c = width
    for stage, n in enumerate(R50_BLOCKS, start=1):
        planes = width * 2 ** (stage - 1)
        for j in range(n):
            p = f"backbone.layer{stage}.{j}"
            t = 3 if temporal is None else temporal[stage - 1][j]
            for z, (o, i, k) in enumerate(((planes, in_c, (t, 1, 1)), (planes, planes, (1, 3, 3)), (planes * 4, planes, (1, 1, 1))), 1):
                s[f"{p}.conv{z}.conv.weight"] = torch.empty(o, i, *k)
                s.update(_bn(f"{p}.conv{z}.bn", o))
            if j == 0:
                s[f"{p}.downsample.conv.weight"] = torch.empty(planes * 4, in_c, 1, 1, 1)
                s.update(_bn(f"{p}.downsample.bn", planes * 4))
            if nonlocal_blocks and stage in (2, 3) and j % 2 == 1:
                c, ci = planes * 4, planes * 2
                for name in ("g", "theta", "phi"):
                    module = f"{name}.0" if sub_sample and name != "theta" else name
                    s[f"{p}.non_local_block.{module}.conv.weight"] = torch.empty(ci, c, 1, 1, 1)
                    s[f"{p}.non_local_block.{module}.conv.bias"] = torch.empty(ci)
                # mmcv ConvModule: bias="auto" drops the bias when a norm follows (conv_out has BN3d).
                s[f"{p}.non_local_block.conv_out.conv.weight"] = torch.empty(c, ci, 1, 1, 1)
                s.update(_bn(f"{p}.non_local_block.conv_out.bn", c))
            in_c = planes * 4
    s["cls_head.fc_cls.weight"] = torch.empty(num_classes, in_c)
    s["cls_head.fc_cls.bias"] = torch.empty(num_classes)
    return randomise(s, seed=1)


def slowfast_slow_state(
    *, width: int = 8, num_classes: int = 400, temporal=None, stem_t: int = 1
) -> dict[str, torch.Tensor]:
    """PySlowFast ResNet (Slow-only) keys: s1.pathway0_stem, sS.pathway0_resJ.branch1/branch2.{a,b,c}, head.projection."""
    s: dict[str, torch.Tensor] = {"s1.pathway0_stem.conv.weight": torch.empty(width, 3, stem_t, 7, 7)}
    s.update(_bn("s1.pathway0_stem.bn", width))
    in_c = width
    for stage, n in enumerate(R50_BLOCKS, start=2):
        planes = width * 2 ** (stage - 2)
        for j in range(n):
            p = f"s{stage}.pathway0_res{j}"
            if j == 0:
                s[f"{p}.branch1.weight"] = torch.empty(planes * 4, in_c, 1, 1, 1)
                s.update(_bn(f"{p}.branch1_bn", planes * 4))
            t = 1 if temporal is None else temporal[stage - 2][j]
            for name, (o, i, k) in zip("abc", ((planes, in_c, (t, 1, 1)), (planes, planes, (1, 3, 3)), (planes * 4, planes, (1, 1, 1)))):
                s[f"{p}.branch2.{name}.weight"] = torch.empty(o, i, *k)
                s.update(_bn(f"{p}.branch2.{name}_bn", o))
            in_c = planes * 4
    s["head.projection.weight"] = torch.empty(num_classes, in_c)
    s["head.projection.bias"] = torch.empty(num_classes)
    return randomise(s, seed=2)


def caffe2_blobs(*, width: int = 8, num_classes: int = 400, temporal=None, stem_t: int = 5) -> dict[str, np.ndarray]:
    """Caffe2 / Detectron blob names of a ResNet-50 video model (conv1_w, res_conv1_bn_*, resS_J_branch*, pred_*)."""
    rng = np.random.default_rng(3)

    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def bn(prefix, c):
        return {f"{prefix}_s": arr(c), f"{prefix}_b": arr(c), f"{prefix}_rm": arr(c), f"{prefix}_riv": np.abs(arr(c)) + 0.5}

    b = {"conv1_w": arr(width, 3, stem_t, 7, 7), **bn("res_conv1_bn", width)}
    in_c = width
    for stage, n in enumerate(R50_BLOCKS, start=2):
        planes = width * 2 ** (stage - 2)
        for j in range(n):
            p = f"res{stage}_{j}"
            if j == 0:
                b[f"{p}_branch1_w"] = arr(planes * 4, in_c, 1, 1, 1)
                b.update(bn(f"{p}_branch1_bn", planes * 4))
            t = 3 if temporal is None else temporal[stage - 2][j]
            for name, (o, i, k) in zip("abc", ((planes, in_c, (t, 1, 1)), (planes, planes, (1, 3, 3)), (planes * 4, planes, (1, 1, 1)))):
                b[f"{p}_branch2{name}_w"] = arr(o, i, *k)
                b.update(bn(f"{p}_branch2{name}_bn", o))
            in_c = planes * 4
    b["pred_w"] = arr(num_classes, in_c)
    b["pred_b"] = arr(num_classes)
    return b


class Py2StylePickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as a Python 2 pickle of numpy arrays has them.

    Such pickles need ``encoding="latin1"`` to load in Python 3, which is what the
    Caffe2 path of snl_video must handle.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def dump_py2_style(obj, path) -> None:
    """Pickle ``obj`` as Python 2 + numpy 1 would: ``str`` buffers and ``numpy.core`` globals."""
    import io

    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(obj)
    # GLOBAL opcodes are newline-terminated text, so the module name can be swapped in place.
    data = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    with open(path, "wb") as f:
        f.write(data)


def shrunk(state: dict[str, torch.Tensor], *, keep: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The same keys with tiny tensors of the same rank and dtype (every dimension 1, except
    the full shape of the keys in ``keep``, e.g. a classifier whose class count is read off it).

    Format detection and key conversion look at names and ranks, not sizes, so a tiny file
    stands in for a 100 MB ResNet-50 checkpoint; works on meta-device state dicts too.
    """
    return {
        k: torch.zeros(tuple(v.shape) if k in keep else (1,) * v.dim(), dtype=v.dtype) for k, v in state.items()
    }


def ffc_resnet50_state(*, num_classes: int = 1000, lfu: bool = False) -> dict[str, torch.Tensor]:
    """pkumivision/FFC ``ffc_resnet50`` keys (the restatement in ``tests/models/ffc_reference.py``), tiny tensors."""
    from ..models.ffc_reference import RefFFCResNet50

    with torch.device("meta"):
        state = RefFFCResNet50(ratio=0.25, lfu=lfu, num_classes=num_classes).state_dict()
    return shrunk(state, keep=("fc.weight", "fc.bias"))


def bat_resnet50_state(variant: str = "c2d", *, num_classes: int = 400) -> dict[str, torch.Tensor]:
    """BAT-Video-Classification ResNet-50 keys (``tests/models/bat_reference.py``; 5-D ``fc``), tiny tensors."""
    from ..models.bat_reference import RefBATResNet50

    with torch.device("meta"):
        state = RefBATResNet50(variant, num_classes=num_classes).state_dict()
    return shrunk(state, keep=("fc.weight", "fc.bias"))
