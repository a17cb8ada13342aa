"""What the pages show, without Streamlit: Plotly figures, the Learn page's worked examples, ready-made recipes.

May import: runs (stored runs and sweeps to draw), audit's report types, privacy and the root. Never
export, cli or the pages; never Streamlit or TensorFlow.
"""
