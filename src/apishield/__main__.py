"""``python -m apishield`` runs the command line."""

from apishield.cli import main

main()
