"""`python -m stillguard.cli`: same as the `stillguard` command."""

from . import main

main()
