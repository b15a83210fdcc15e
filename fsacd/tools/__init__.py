"""Demo and benchmarks (they import the stand-in; serving code never does)."""
