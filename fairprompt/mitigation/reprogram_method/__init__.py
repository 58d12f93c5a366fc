"""FairReprogram, one module per job: ``config`` (:class:`ReprogramConfig`), ``triggers`` (what is trained and
the triggered model copies), ``objective`` (surrogate gap, adversary), ``training`` (one trigger per lambda),
``selection`` (tuning and selection rows, the operating-point rule), ``repair`` (:func:`reprogram`),
``result``, ``record`` (its part of results.json), ``artifact`` (its files, :func:`load_trigger`) and ``step``
(what the pipeline calls).  The public names are re-exported, lazily, by :mod:`fairprompt.mitigation`;
importing this package does not load torch.
"""
