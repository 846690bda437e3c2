"""Inline keyboards and their CallbackData. Remember: callback_data can be forged."""
