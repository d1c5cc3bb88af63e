"""Reports over runs and submissions: the ledger (`python -m src.ledger`) and its rows, one per run folder."""
