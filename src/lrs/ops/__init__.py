"""The use cases: one plain async function per operation.

Each takes what it needs explicitly (the ``Database``, the settings, who asks) and owns its
transaction, its audit entry and its notifications. The HTTP routers and the CLI both call
these functions, so the two cannot disagree.
"""
