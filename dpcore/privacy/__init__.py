"""The privacy mathematics: ε of a DP-SGD run by composing dp_accounting's events, and its readings.

Owns: the events of a run (``events``), their composition under RDP or PLD (``composition``), the
bounds on a query's work and its estimate in seconds (``limits``, ``pld_grid``, ``work``), ε, its
curve, budget and split (``accounting``), noise calibration (``calibration``, ``search``), the price of a privately derived CSV schema
(``preprocessing``), noise schedules and the adaptive-clipping split (``noise``), the cost of choosing
among runs (``selection``), and the plain-language readings of ε (``explain``).

May import: the root (config, errors, safe_io, child_process) and dp_accounting. Never data, dpsgd,
runs or anything above; never TensorFlow.
"""
