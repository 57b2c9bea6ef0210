"""ONNX translations for the PyTorch operators that standard ONNX lacks, used by ``export``.

The rational graph filters (``snl`` with ``filter: cayley``, and ``arma`` with
``solver: exact``) solve small linear systems with ``torch.linalg.solve``, which
``torch.export`` records as ``aten._linalg_solve_ex``. Standard ONNX has no solve nor
inverse operator, so the exporter cannot translate it. ONNX Runtime ships one in its
contrib domain: ``com.microsoft::Inverse`` (batched over leading dimensions), and
``X = A^-1 B`` is then one ``MatMul``. The systems these filters solve are well
conditioned by construction (``h²L² + I`` has eigenvalues >= 1; ARMA's ``I − wA`` has
``|w| < 1`` and ``ρ(A) = 1``), so the inverse-based solve stays within the export's
verification tolerance. An ONNX file that uses it runs in ONNX Runtime (the runtime
``export --verify`` uses), not in runtimes without Microsoft's contrib operators.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["MICROSOFT_DOMAIN", "onnx_translation_table"]

#: The ONNX Runtime contrib-operator domain that holds ``Inverse``.
MICROSOFT_DOMAIN = "com.microsoft"


def onnx_translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """``custom_translation_table`` for ``torch.onnx.export``: ``aten._linalg_solve_ex`` → Inverse + MatMul.

    Imported lazily (onnxscript comes with the ONNX extra), so that building the table is the
    only place that needs it.
    """
    import onnxscript
    from onnxscript import opset18 as op

    import onnx

    # onnx's schema registry holds no contrib operators: describe Inverse's signature here
    # (one input, one output of the same floating type), as ONNX Runtime defines it.
    schema = onnx.defs.OpSchema(
        "Inverse", MICROSOFT_DOMAIN, 1,
        inputs=[onnx.defs.OpSchema.FormalParameter("X", "T")],
        outputs=[onnx.defs.OpSchema.FormalParameter("Y", "T")],
        type_constraints=[("T", ["tensor(float16)", "tensor(float)", "tensor(double)"], "floating tensors")],
    )
    inverse = onnxscript.values.Op(onnxscript.values.Opset(MICROSOFT_DOMAIN, 1), "Inverse", schema)

    def linalg_solve_ex(a: Any, b: Any, left: bool = True, check_errors: bool = False) -> tuple[Any, ...]:
        # torch's four outputs: (result, LU, pivots, info). Only `result` (and `info`, for the
        # error check that torch.linalg.solve adds) are read by exported graphs; LU is stood in by
        # A itself and the pivots/info by zeros (info 0 = "solved").
        if not left:
            raise NotImplementedError("ONNX export of torch.linalg.solve(..., left=False) is not supported")
        result = op.MatMul(inverse(a), b)
        batch_shape = op.Shape(a, start=0, end=-2)
        rows = op.Shape(a, start=-1)
        pivots = op.ConstantOfShape(
            op.Concat(batch_shape, rows, axis=0),
            # onnxscript's opset stubs name onnx.TensorProto; its own ir tensors are accepted too
            value=onnxscript.ir.tensor([0], dtype=onnxscript.ir.DataType.INT32),  # type: ignore[arg-type]
        )
        info = op.ConstantOfShape(
            batch_shape,
            value=onnxscript.ir.tensor([0], dtype=onnxscript.ir.DataType.INT32),  # type: ignore[arg-type]  # (as above)
        )
        return result, a, pivots, info

    return {torch.ops.aten._linalg_solve_ex.default: linalg_solve_ex}
