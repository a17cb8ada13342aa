"""Start DP Explorer warm: `python serve.py [streamlit options]` is `streamlit run app.py [options]` with the
server warmed as it starts (app_state.warm_server), before the first visitor arrives.

`streamlit run app.py` runs none of the app's code until a first page is opened, so that visitor's ε
and the room's first run would pay for starting the accountant, the training processes (TensorFlow)
and the dataset. This starts that warming in a background thread of the server's own process, then
hands the process to Streamlit's command line: the pages share what the warming built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# As in app.py: TensorFlow's C++ start-up lines stay out of the server log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
APP_ROOT = Path(__file__).resolve().parent


def main() -> None:
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    from streamlit.web import cli

    import app_state

    app_state.warm_server()
    cli.main(["run", str(APP_ROOT / "app.py"), *sys.argv[1:]], prog_name="streamlit")


if __name__ == "__main__":
    main()
