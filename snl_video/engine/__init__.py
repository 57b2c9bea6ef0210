"""The training and evaluation engine, one module per job; import the submodules directly.

The train recipe (:mod:`.train`) with its optimizer and schedule (:mod:`.optim`), metric
log (:mod:`.metric_log`) and experiment trackers (:mod:`.trackers`: TensorBoard, CSV, W&B,
MLflow), checkpoints (:mod:`.checkpoint`) and distributed helpers (:mod:`.distributed`);
evaluation (:mod:`.evaluate`) over pure metrics (:mod:`.metrics`), reports and their files
(:mod:`.reports`) and figures (:mod:`.plots`); inference and the after-training verbs
(:mod:`.inference`, :mod:`.explain`, :mod:`.spectrum`, :mod:`.features`, :mod:`.export`).
"""
