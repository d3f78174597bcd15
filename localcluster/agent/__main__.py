import argparse
from pathlib import Path

from .agent import main

parser = argparse.ArgumentParser(prog="python -m localcluster.agent", description=__doc__)
parser.add_argument("--state-dir", type=Path, required=True, help="the local cluster's state folder")
main(parser.parse_args().state_dir)
