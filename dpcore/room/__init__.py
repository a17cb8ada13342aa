"""A shared server: who is asking (participants and the host), the server's settings, its files and uploads.

Owns: participants, tokens and the checks of who may manage what (``participants``), the settings read
from the environment (``server_settings``), which server files a person may name (``server_paths``),
uploaded CSV files and their quotas (``uploads``), the guard on the host secret (``host_guard``) and
who may join: names per address, the room code, names the host removed (``joins``), and who was
here lately and when the board was cleared (``presence``).

May import: data (to check an upload is a CSV), privacy and the root. Never dpsgd or audit: a room
never trains; the runs it owns are kept by ``dpcore.runs``, which may import the room.
"""
