"""cnn-service core: a NumPy + Numba CNN library (layers, losses, optimizers, schedules) plus
models, training, data sets and artifacts. Submodules are imported explicitly (``core.layers``...);
nothing heavy happens at import time (no Numba kernel runs on import)."""
