"""Empirical privacy: what attacks prove about a trained model, next to the ε the accountant promises.

Owns: membership-inference attacks (``attacks``), the statistics that turn their outcomes into ε
lower bounds and the one-run canary bound (``bounds``), auditing a model and the canary training
(``model_audit``), and the report with its JSON (``report``), which the run store keeps as text.

May import: dpsgd (to score and train models), data, privacy and the root. Never runs, room or
anything above: auditing a stored run is ``dpcore.runs.audits``.
"""
