"""Analytics: completion and engagement metrics from rollups kept by the write path."""
