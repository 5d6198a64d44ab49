"""Latency benchmarking: one result schema (``schema``), host runs with LiteRT (``host``), tables and plots
(``report``). ``android_bench`` writes the same schema from phones."""
