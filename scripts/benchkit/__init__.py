"""What the scripts of scripts/bench/, scripts/diagnostics/ and scripts/gpu/ share: the JSON and table at the end,
the HF reference arms, wall-clock budgets, step timers. Not part of the tickettune package: a script puts scripts/
on sys.path (its first lines) and imports `benchkit.<module>`."""
