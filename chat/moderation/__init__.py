"""
Moderation: what operators decide about people and rooms, and how every
server process enforces it.

- ``rules``: the decisions as each process reads them (cached briefly,
  dropped at once when any process changes them), and the checks the
  consumer makes on a connect and on a send.
- ``actions``: what operators do (delete a message, mute, ban, slow mode,
  lock), used alike by the ``@messages``/``@rooms``/``@bans`` API and the admin.
- ``api``: those HTTP endpoints.
"""
