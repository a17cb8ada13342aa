"""What leaves the app: the faithful TensorFlow Privacy script and its notebook, share links that carry a
config, a config's or run's privacy report (Markdown, HTML), and a finished run's model as a Keras archive.

May import: runs, room, audit, dpsgd (lazily, inside the functions that need TensorFlow: TensorFlow
Privacy's statement in a report, and saving a model), data, privacy and the root. Never views, cli or
the pages. A script or notebook is text that imports TensorFlow where it runs.
"""
