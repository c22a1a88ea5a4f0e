"""xray-firearm-detector: detect firearms and firearm components in parcel X-ray scans."""

from .offline import set_env as _set_env

_set_env()  # before anything can import ultralytics (unpickling a checkpoint does)

__version__ = "0.1.0"
