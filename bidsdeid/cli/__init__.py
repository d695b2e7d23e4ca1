"""Command line: ``parser`` builds the argparse parser, ``run`` runs, ``demo`` demos."""
