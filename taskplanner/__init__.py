"""taskplanner: one curated task queue per recruiting coordinator, kept in sync with the ATS."""

__version__ = "0.1.0"
