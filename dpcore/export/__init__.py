"""What leaves the app: the faithful TensorFlow Privacy script, and share links that carry a config.

May import: runs, room, audit, data, privacy and the root. Never views, cli or the pages; never
TensorFlow (a script is text that imports it where it runs).
"""
