"""zetcd-fuzz: hypothesis campaigns that drive zetcd and ZooKeeper 3.8 with the same generated
op sequences, shrink every divergence to a minimal replayable case, and report them.

Modules: ``client`` (a blocking client on the project's codec), ``ops`` (steps as data, JSON),
``strategies`` and ``machine`` (the hypothesis state machine), ``driver`` (one example against
both servers), ``compare`` (the adapter over ``oracle/``: normalization, diff, divergence
records), ``campaign`` (rounds, budgets, shrinking, minimizing), ``replay`` (replay files,
pytest snippets), ``report`` (JSON lines and Markdown), ``coverage``, ``proxy`` (planted
divergences), ``spawn`` (``--spawn``) and ``cli``. The fuzzer talks to servers only over the
wire.
"""
