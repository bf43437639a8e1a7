"""Resumable runs: ``dgflow refine --config`` and ``dgflow sample --config`` over one generic runner.

* :mod:`.store` -- the run folder: its claim (fingerprint incl. the checkpoints' sha256), batch files,
  pending work, wall times, and the deterministic ``.npz`` writer;
* :mod:`.engine` -- the generic runner: lock, load, claim, the pending batches split over ``torchrun``
  ranks, then the merge on rank 0;
* :mod:`.measure` -- what a run measures (toy, text or image metrics) and the real data it compares against;
* :mod:`.refine`, :mod:`.select`, :mod:`.sample` -- the three jobs, as thin specifications over the engine
  (:mod:`.generator`: the models, critic, fingerprint and outputs refine and select share).

Entry points: :func:`dgflow.runs.refine.run_refine` (``dgflow refine --config``, any method) and
:func:`dgflow.runs.sample.run_sample` (``dgflow sample --config``).
"""
