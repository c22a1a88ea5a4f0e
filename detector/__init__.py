"""xray-firearm-detector: detect firearms and firearm components in parcel X-ray scans."""

__version__ = "0.1.0"
