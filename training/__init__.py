"""Training, evaluation, export and the researcher loop."""

import detector  # noqa: F401  (sets ultralytics' offline environment first)
