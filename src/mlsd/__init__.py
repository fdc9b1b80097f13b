"""mlsd: the book's seven-step method and its ten systems, as running software.

OpenMP threads (LightGBM, PyTorch, FAISS) sleep instead of spinning while they wait: on a small
shared machine a spinning team of two threads waits for a core another process holds, and a
LightGBM fit measured 0.5 s alone took 64 s so. Set ``OMP_WAIT_POLICY`` yourself to override.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
