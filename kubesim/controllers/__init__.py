"""Simulated controllers: the stage engine, its stage table, workload status rules, and the
garbage collector. See ``engine`` for the model (kwok-style stages)."""
