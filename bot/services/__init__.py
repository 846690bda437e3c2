"""Use cases of the desk. Services know the domain and the database and reach Telegram only
through the delivery path (``bot.delivery``)."""
