"""stackgen: put Node-RED on the internet safely."""

__version__ = "0.1.0"
