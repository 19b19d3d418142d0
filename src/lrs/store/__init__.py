"""Storage: the only place that speaks SQL. One module per xAPI resource."""
