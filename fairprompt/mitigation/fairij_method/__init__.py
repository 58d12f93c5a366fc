"""FairIJ, one module per job: ``config`` (:class:`FairIJConfig`), ``objective`` (the validation fairness and
utility surrogates), ``curvature`` and ``influence`` (the infinitesimal-jackknife core), ``selection`` (which
rows, how much), ``repair`` (:func:`fairij` and the appended-prompt repair), ``verify`` (paired refits),
``result``, ``record`` (its part of results.json), ``artifact`` (its files) and ``step`` (what the pipeline
calls).  The public names are re-exported, lazily, by :mod:`fairprompt.mitigation`; importing this package
does not load torch.
"""
