"""mlsd over HTTP: ``main`` (the app factory, middleware, error handlers), ``deps`` (what every
router uses), ``metrics`` (Prometheus series) and ``routes/<system>.py`` (one router per system,
with its request and response models). Handlers stay thin and call the system's ``serving.py``.
Nothing outside this package imports FastAPI, so ``mlsd run`` never does."""
