"""hatch-modelpack: trained models as ordinary Python wheels, built by a Hatch build hook."""

__version__ = "0.1.0"
