from lrs.cli import main

# Guarded: a process an import starts to read lines (spawned) imports this module again.
if __name__ == "__main__":
    raise SystemExit(main())
