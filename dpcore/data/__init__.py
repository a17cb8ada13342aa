"""The data: built-in datasets, a person's CSV file with its schema, the splits, and ScatterNet features.

Owns: the registry and loaders (``datasets``), arrays with metadata (``types``), CSV reading within
bounds (``csv_files``), applying and privately deriving a schema (``tabular``), which rows train, test
and validate (``splits``), and the scattering transform's features with their disk cache (``scatter``).

May import: privacy (the price of a derived schema) and the root. Never dpsgd, audit, runs, room or
anything above. TensorFlow only as Keras's MNIST downloader, when a run loads MNIST without a copy.
"""
