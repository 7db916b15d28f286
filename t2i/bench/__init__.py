"""The GAN-versus-diffusion benchmark, library part: cost counting, scoring, plots and the report.

The ``t2i bench`` command (``train/bench.py``) trains or loads each family under one
budget and calls these; nothing here parses arguments or touches files at import.

    python -c "from t2i.bench.cost import demo; demo()"
"""
