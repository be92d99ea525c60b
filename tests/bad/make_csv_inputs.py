#!/usr/bin/python3
"""Writes the hand-made dataset-CSV inputs of the bad-input corpus (tests/bad/inputs/csv-*).

Every row is a synthetic two-atom rock-salt cell made up here, not taken from any dataset; each
file carries exactly one defect. Run from the repository root when the corpus needs changing:
    /usr/bin/python3 tests/bad/make_csv_inputs.py
"""
import gzip
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inputs")
HEADER = "material_id,formation_energy_per_atom,band_gap,cif\n"


def cif(a):
    return (f"data_synthetic_rocksalt\n_cell_length_a {a}\n_cell_length_b {a}\n"
            f"_cell_length_c {a}\n_cell_angle_alpha 60\n_cell_angle_beta 60\n"
            "_cell_angle_gamma 60\nloop_\n_atom_site_type_symbol\n_atom_site_fract_x\n"
            "_atom_site_fract_y\n_atom_site_fract_z\nNa 0 0 0\nCl 0.5 0.5 0.5\n")


def row(i, text=None, extra=""):
    return f'synthetic-{i},-1.0,0.5{extra},"{text if text is not None else cif(3.9 + 0.01 * i)}"\n'


def write(name, text, mode="w"):
    with open(os.path.join(OUT, name), mode) as f:
        f.write(text)


write("csv-garbage-cif.csv", HEADER + row(1) + row(2, "this is not a CIF\n_cell_length_a banana\n"))
write("csv-ragged-row.csv", HEADER + row(1) + row(2) + row(3, extra=",1.0") + row(4))
write("csv-unterminated-quote.csv", HEADER + row(1) + row(2) + row(3)[:-2] + "\n")
# A gzip stream cut in the middle: enough rows that the cut falls inside the compressed data.
full = gzip.compress((HEADER + "".join(row(i) for i in range(400))).encode(), mtime=0)
write("csv-truncated.csv.gz", full[: len(full) // 2], "wb")
