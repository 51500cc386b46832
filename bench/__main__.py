import sys

from bench.cli.commands import main

if __name__ == "__main__":  # not in a spawned worker process
    sys.exit(main())
