"""``python -m lexcoder ...`` runs the command line (also what ``accelerate launch -m lexcoder`` needs)."""
from .cli import main

main()
