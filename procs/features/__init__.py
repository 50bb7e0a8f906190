"""Features process: book/trade rings in, ``feat`` ring out; the engine is ``procs.featurecalc``."""
