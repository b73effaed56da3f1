"""Cross-check mode: the bridge to a real ZooKeeper, the cross-checker that composes it with the
etcd emulation, and the normalization, diff, divergence records and reports around them.

Modules: ``bridge`` (BridgeBackend), ``crosscheck`` (CrossChecker), ``normalize`` (the rule
table), ``zxidmap`` (the monotone zxid mapping), ``sessionmap`` (session ids and passwords of the
two sides), ``diff`` (field-level comparison), ``pairing`` (watch events and connection closes
paired across the sides), ``records`` (divergence JSON lines), ``summary`` (the live summary on
stderr), ``report`` (``zetcd report``), ``wiring`` (cross-check mode for the runner),
``inprocess`` (a cross-check server in a thread, for tests and fuzz campaigns), ``sides``.
"""
