"""Configuration files of the containers tools (registries.conf, ...): search paths, drop-ins,
typed results.  Each file format has its own module; nothing is imported here."""
