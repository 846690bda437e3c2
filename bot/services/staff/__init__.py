"""Staff-side use cases (SPEC §5), one module per concern:

- :mod:`~bot.services.staff.actions`: what staff do to a ticket from its card (take, assign,
  priority, line, ask for information, the Resolve prompt, close) and the card's menus;
- :mod:`~bot.services.staff.relay`: the conversation with the customer (answers, notes, albums,
  edits) and what a staff message in the group is;
- :mod:`~bot.services.staff.lookup`: reading (the ticket of a message or a topic, its history,
  the queue, search), returned as data for the edges to render.
"""
