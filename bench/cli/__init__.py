"""The command line: `python -m bench run|train|report|compare|check|list`."""
