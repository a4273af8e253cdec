"""gmi-harness: build, validate and package GMIs (Genie Machine Images)."""

__version__ = "0.1.0"
