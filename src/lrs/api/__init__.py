"""HTTP: thin routers that parse, call the protocol and the store, and respond."""
