"""Try the whole desk in a browser without Telegram: ``python -m bot sandbox``."""
