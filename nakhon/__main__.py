"""`python -m nakhon` runs the `nakhon` command."""

from nakhon.cli import main

main()
