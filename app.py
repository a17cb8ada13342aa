"""DP Explorer: a Streamlit app for the privacy-utility trade-off of DP-SGD. Run: streamlit run app.py"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# TensorFlow loads in this process when the first run is submitted; at level 3 its C++ start-up
# lines (cuDNN/cuFFT/cuBLAS factory registrations, CPU feature notes) stay out of the server log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import streamlit as st

# The pages import the app's shared state module from this folder, wherever the app is started from.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import app_state  # noqa: E402
from app_state import host_panel  # noqa: E402
from dpcore.errors import UserInputError  # noqa: E402

st.set_page_config(page_title="DP Explorer", page_icon=":material/shield_lock:", layout="wide")

# The library's warnings (a wrong host secret or room code, with session and address) go to the
# server's log with their time; set up once per server process.
ROOM_LOG = logging.getLogger("dpcore")
if not ROOM_LOG.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ROOM_LOG.addHandler(_handler)

PAGES = [
    st.Page("pages/explore.py", title="Explore", icon=":material/tune:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/sweep.py", title="Sweep", icon=":material/grid_on:", url_path="sweep"),
    st.Page("pages/compare.py", title="Compare", icon=":material/scatter_plot:", url_path="compare"),
    st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]

page = st.navigation(PAGES)
st.sidebar.title("DP Explorer")
try:
    app_state.settings()  # a bad environment variable (say, a Ray address) is refused before anything is served
except UserInputError as exc:
    st.error(f"This server's settings are refused, so it serves nothing until they are fixed: {exc}")
    st.stop()
try:
    app_state.runner()
    app_state.check_store()
    app_state.init_session()
except UserInputError as exc:  # e.g. a run store written by a newer DP Explorer, or a path that is not a file
    st.error(f"The run store cannot be used: {exc}")
    st.stop()
app_state.store_banner()
app_state.show_notices()
try:
    page.run()
except app_state.PageDone:
    pass
except UserInputError as exc:  # a value no page control offers (a forged widget value): one message
    st.error(str(exc))
# After the page, so the summary shows the config the page has just settled on.
app_state.sidebar()
host_panel.render()
