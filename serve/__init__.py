"""The HTTP service and the operator console."""

import detector  # noqa: F401  (sets ultralytics' offline environment first)
