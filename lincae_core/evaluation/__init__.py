"""The paper's evaluation (Sec. 4): protocol (per-track scoring), metrics, spectral distances,
the runner over folders of stems and music, and the report.
"""
