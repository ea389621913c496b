"""One-off studies and scripts, apart from the experiment engine (experiments/): the toy model's training
(``train_toy``, ``toy_training``: its losses) and acceptance (``evaluate_toy``, ``toy_contact_sheet``), inversion
fidelity tables (``inversion_table``, ``flow_inversion_table``, ``ddim_reconstruction``), Fig. 3's trajectory
statistics (``trajectory``), timing and speed (``benchmark_edit``, ``benchmark_metrics``, ``model_timing``, the
``*.sh`` GPU scripts) and the tracker's IoU (``tracker_iou``). They use the engine; nothing below imports them."""
