"""Papers as data: cards (their experiments, tables and claims) and `bench reproduce`."""
