"""Administration: stores, credentials, audit."""
