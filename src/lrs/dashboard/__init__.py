"""The dashboard for leaders: pages, charts, words."""
