"""The ways requests reach the desk besides Telegram updates (which ``bot/handlers`` take):
each channel turns what arrives into the same use cases (``bot/services``)."""
