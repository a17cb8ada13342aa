"""Runs and their history: the store, the fair job queue and where it trains, sweeps, estimates, audits of runs.

Owns: the SQLite run store (``store``, its ``store_schema``, ``records``, ``run_table`` and the weights it
keeps, ``weights_archive``), the job runner with its fair queue (``jobs``, ``job_state``) and backends
(``backends``: this process; ``process_backend``: child processes; ``ray_backend``: a Ray cluster),
sweeps (``sweeps``), compute estimates (``capacity``), runs compared (``comparison``), audits of stored
runs (``audits``), what belongs to one participant (``owners``) and the host's view of the room
(``room_status``).

May import: room, audit, dpsgd (lazily, in the functions that train), data, privacy and the root.
Never export, views, cli or the pages.
"""
