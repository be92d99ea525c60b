"""Symmetry filter against python3-spglib on all of MP-20 test at symprec 0.01 A: space group,
international symbol, Hall number and Wyckoff letters equal for every structure. The checks
live in test_filter_symmetry.py (symprec 0.1 A and the dataset's labels); this file runs them
at the tighter tolerance as a separate ctest so each stays near two minutes on two cores.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_filter_symmetry  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_filter_symmetry.run(0.01, check_labels=False))
