/* crystal: the crystal type, element table, lattice geometry and structure I/O.
 *
 * The bottom module of druse: it depends on nothing of ours. Conventions, as in spglib:
 *   - lattice[i] is the i-th lattice vector (rows are vectors a, b, c), in Angstrom;
 *   - fractional coordinates are in units of those vectors; Cartesian ones in Angstrom;
 *   - functions that can fail return an xtal_status and fill an xtal_err with a message that
 *     names the file, line or field; they never print and never exit.
 */
#ifndef DRUSE_CRYSTAL_H
#define DRUSE_CRYSTAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum {
    XTAL_OK = 0,
    XTAL_EIO = -1,          /* file missing, unreadable, unwritable */
    XTAL_EPARSE = -2,       /* malformed input */
    XTAL_EINVALID = -3,     /* well-formed but physically impossible (zero volume, NaN, ...) */
    XTAL_EUNSUPPORTED = -4, /* valid but not handled (disordered structures, ...) */
    XTAL_ENOMEM = -5,
    XTAL_ELIMIT = -6, /* exceeds a hard limit (XTAL_MAX_ATOMS, ...) */
    XTAL_EOF = 1      /* end of a stream; not an error */
} xtal_status;

typedef struct {
    char msg[512];
} xtal_err;

/* printf-style helper used by all modules to fill an xtal_err (err may be NULL). Returns code. */
int xtal_err_set(xtal_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *xtal_status_name(int code);

/* Hard limit on atoms per structure: a file that claims more is refused before allocating. */
#define XTAL_MAX_ATOMS 100000

/* --------------------------------------------------------------- crystal */

typedef struct {
    char id[96]; /* material id, or file name (+ block) it came from */
    int natoms;
    int *Z;               /* [natoms] atomic numbers, 1..XTAL_NUM_ELEMENTS */
    double *frac;         /* [natoms*3] fractional coordinates */
    double lattice[3][3]; /* rows are lattice vectors, Angstrom */
} xtal_crystal;

/* Allocates Z and frac for natoms atoms (zeroed). */
int xtal_crystal_init(xtal_crystal *c, int natoms, xtal_err *err);
void xtal_crystal_free(xtal_crystal *c);
int xtal_crystal_copy(xtal_crystal *dst, const xtal_crystal *src, xtal_err *err);
/* Checks finiteness, volume > 0, known elements, natoms range. */
int xtal_crystal_validate(const xtal_crystal *c, xtal_err *err);

/* A growable list of crystals; owns its items. */
typedef struct {
    int n, cap;
    xtal_crystal *items;
} xtal_list;

/* Moves *c into the list (c is left empty). */
int xtal_list_push(xtal_list *l, xtal_crystal *c, xtal_err *err);
void xtal_list_free(xtal_list *l);

/* ------------------------------------------------------- element table */

#define XTAL_NUM_ELEMENTS  103
#define XTAL_MAX_OX_STATES 12

typedef struct {
    int Z;
    const char *symbol;
    double mass_amu;          /* standard atomic weight, amu */
    double covalent_radius;   /* Angstrom (Cordero et al. 2008); NaN where unknown */
    double electronegativity; /* Pauling; NaN where unknown */
    int n_oxidation_states;   /* SMACT v2.6 default set; 0 for noble gases */
    int oxidation_states[XTAL_MAX_OX_STATES];
    int is_metal;  /* SMACT v2.6 smact.metals (the alloy rule) */
    double uff_x1; /* UFF vdW distance = LJ r_min, Angstrom */
    double uff_D1; /* UFF well depth, eV */
} xtal_element;

/* Element by atomic number; NULL outside 1..XTAL_NUM_ELEMENTS. */
const xtal_element *xtal_element_by_Z(int Z);
/* Atomic number from a symbol ("Fe", case-insensitive, trailing charge/digits ignored as in
 * CIF type symbols such as "Fe2+" or "O1"); 0 when unknown. */
int xtal_element_from_symbol(const char *symbol);

/* ------------------------------------------------------------- lattice */

/* a, b, c (Angstrom), alpha, beta, gamma (degrees) from a lattice. */
void xtal_lattice_to_params(const double lattice[3][3], double abc[3], double angles_deg[3]);
/* Lattice from parameters, in pymatgen's convention (Lattice.from_parameters, vesta=False):
 * c along z, a in the xz plane. Fails when the angles do not close a cell. */
int xtal_lattice_from_params(const double abc[3], const double angles_deg[3], double lattice[3][3],
                             xtal_err *err);
/* Signed volume (Angstrom^3): det(lattice). */
double xtal_lattice_volume(const double lattice[3][3]);
/* Inverse of the lattice; returns 0 on success, -1 if singular. */
int xtal_lattice_inverse(const double lattice[3][3], double inverse[3][3]);
/* Reciprocal vectors without 2 pi: rows b_i* with a_i . b_j* = delta_ij (1/Angstrom). */
int xtal_lattice_reciprocal(const double lattice[3][3], double recip[3][3]);

void xtal_frac_to_cart(const double lattice[3][3], const double frac[3], double cart[3]);
void xtal_cart_to_frac(const double inverse[3][3], const double cart[3], double frac[3]);
/* Wraps every fractional coordinate into [0, 1). */
void xtal_wrap(xtal_crystal *c);

double xtal_volume(const xtal_crystal *c); /* Angstrom^3, absolute */
double xtal_mass_amu(const xtal_crystal *c);
double xtal_density(const xtal_crystal *c); /* g/cm^3 */

/* Minimum-image distance (Angstrom) between sites i and j over all lattice translations,
 * exact for any cell shape (the image range comes from the interplanar spacings, not a fixed
 * +-1 shell). i == j gives the shortest non-zero lattice vector (the site to its own images). */
double xtal_min_image_distance(const xtal_crystal *c, int i, int j);
/* Smallest distance between distinct sites; the self-image distance too if include_self.
 * Returns +inf for one atom without include_self. */
double xtal_min_distance(const xtal_crystal *c, int include_self);

/* Niggli-reduces the lattice (spglib's spg_niggli_reduce) and re-expresses the fractional
 * coordinates in it, wrapped to [0, 1). The structure itself is unchanged. */
int xtal_niggli_reduce(xtal_crystal *c, double symprec, xtal_err *err);

/* Greatest common divisor of |a| and |b| (0 when both are 0): reduces compositions. */
long xtal_gcd(long a, long b);

/* Reduced formula in pymatgen's style for sorting: elements ordered by electronegativity
 * then symbol, counts divided by their gcd ("Fe2O3", "NaCl", "LiFePO4"). */
void xtal_formula(const xtal_crystal *c, int reduced, char *buf, size_t bufsize);

/* ------------------------------------------------------------- file I/O */

typedef enum {
    XTAL_FMT_UNKNOWN = 0,
    XTAL_FMT_CIF,
    XTAL_FMT_POSCAR,
    XTAL_FMT_EXTXYZ,
    XTAL_FMT_CSV, /* CDVAE-style dataset, optionally gzip'd */
    XTAL_FMT_DIR  /* a directory of structure files */
} xtal_format;

/* Guesses the format from the name (.cif, POSCAR/CONTCAR/.vasp/.poscar, .xyz/.extxyz,
 * .csv/.csv.gz) or, for a directory, XTAL_FMT_DIR. */
xtal_format xtal_guess_format(const char *path);
/* The same guess from the name alone, without looking at the file system (never
 * XTAL_FMT_DIR): for output names, which may not exist yet or may be directories. */
xtal_format xtal_format_from_name(const char *name);

/* CIF through libcodcif. Every data block with atom sites gives one crystal; symmetry
 * operations (_symmetry_equiv_pos_as_xyz or _space_group_symop_operation_xyz) are expanded
 * and coincident images merged. Partial occupancy is XTAL_EUNSUPPORTED.
 * Atoms come in file order (the images of a site together), wrapped into [0, 1). As pymatgen's
 * CifParser does, coordinates printed with few decimals (<= 12) within a relative 1e-4 of 1/3
 * or 2/3 become exact thirds, so both read MP-style CIFs identically. Ids: the file's base name
 * without .cif (or name), plus ":block" when several blocks hold atoms. On error nothing is
 * appended. Not thread-safe: libcodcif keeps its parser state in globals. */
int xtal_read_cif_file(const char *path, xtal_list *out, xtal_err *err);
/* Same, from a string held in memory (name is used in messages and ids). */
int xtal_read_cif_string(const char *text, const char *name, xtal_list *out, xtal_err *err);
/* Writes one P1 data block at full double precision. A CIF holds the cell as parameters, so
 * readers rebuild the lattice in pymatgen's orientation (xtal_lattice_from_params). */
int xtal_write_cif(const xtal_crystal *c, const char *path, xtal_err *err);

/* VASP 5 POSCAR/CONTCAR (species line required), Direct or Cartesian, scale factor (negative =
 * target volume), optional Selective dynamics line. */
int xtal_read_poscar(const char *path, xtal_crystal *out, xtal_err *err);
/* Writes Direct coordinates at full precision, scale 1, the id as comment. VASP needs the
 * atoms grouped by species: they are written grouped in order of first appearance, keeping
 * the crystal's order within a species, so read(write(x)) == x when x is already grouped. */
int xtal_write_poscar(const xtal_crystal *c, const char *path, xtal_err *err);

/* Extended XYZ (Lattice="..." Properties=species:S:1:pos:R:3), appending one frame per call
 * when append is set. extra is an optional string of key=value pairs for the comment line. */
int xtal_write_extxyz(const xtal_crystal *c, const char *extra, const char *path, int append,
                      xtal_err *err);
/* Reads every frame of an extended XYZ file, appending one crystal per frame (all or nothing).
 * A frame needs Lattice="9 numbers" (rows a, b, c); Properties= must hold species:S:1 and
 * pos:R:3 (Cartesian, Angstrom; other columns are skipped; without Properties= the columns are
 * species and pos). Coordinates are wrapped into [0, 1). Ids: the comment line's material_id=,
 * else id=, else sample=N as "sample_%06ld" (druse sample), else "FILE:FRAME" (base name,
 * 1-based). Errors name the file and line. */
int xtal_read_extxyz(const char *path, xtal_list *out, xtal_err *err);

/* Reads any supported structure file (CIF, POSCAR, extended XYZ), or every such file in a
 * directory (sorted by name), or a dataset CSV, appending to out (all or nothing). */
int xtal_read_any(const char *path, xtal_list *out, xtal_err *err);

/* -------------------------------------------------------- dataset CSVs */

/* A CDVAE-style dataset: crystals plus their numeric per-row properties. */
typedef struct {
    xtal_list crystals;
    int n_props;
    char **prop_names;   /* [n_props] column names, e.g. "formation_energy_per_atom" */
    double *prop_values; /* [crystals.n * n_props], NaN where empty or not a number */
} xtal_dataset;

void xtal_dataset_free(xtal_dataset *ds);
/* Index of a property column, or -1. */
int xtal_dataset_prop_index(const xtal_dataset *ds, const char *name);

/* Streaming reader for the CSVs (plain or gzip'd, RFC 4180 with multi-line quoted fields).
 * Rows are read in chunks as raw text, so that parsing a chunk (the expensive part: the CIF)
 * can be spread over processes or ranks. */
typedef struct xtal_csv_reader xtal_csv_reader;

typedef struct {
    long row;  /* 0-based data row index in the file */
    long line; /* 1-based line where the row starts */
    int nfields;
    char **fields; /* [nfields], NUL-terminated, owned by the chunk */
} xtal_csv_row;

typedef struct {
    int n, cap;
    xtal_csv_row *rows;
} xtal_csv_chunk;

/* Opens the file and reads the header; checks that the columns needed for crystals exist
 * (material_id and cif). */
int xtal_csv_open(const char *path, xtal_csv_reader **out, xtal_err *err);
void xtal_csv_close(xtal_csv_reader *r);
int xtal_csv_ncols(const xtal_csv_reader *r);
const char *xtal_csv_colname(const xtal_csv_reader *r, int col);
/* Reads up to max_rows rows into chunk (replacing its content). Returns XTAL_OK with n > 0,
 * XTAL_EOF with n == 0 at the end, or an error naming the line. */
int xtal_csv_read_chunk(xtal_csv_reader *r, int max_rows, xtal_csv_chunk *chunk, xtal_err *err);
void xtal_csv_chunk_free(xtal_csv_chunk *chunk);
/* Parses the rows of a chunk into ds (crystals from the cif column, properties from numeric
 * columns); ds->prop_names must already be set by xtal_dataset_begin.
 * begin (re)initializes ds (pass it empty) and picks the property columns: every column but
 * the structure ones (material_id, cif, atomic_numbers, lattice_abc_angles, frac_coords,
 * elements, n_atoms), known text ones (pretty_formula, formula, structure_source), pandas'
 * unnamed index, and any whose first value is text (the reader reads the first row ahead). */
int xtal_dataset_begin(xtal_dataset *ds, const xtal_csv_reader *r, xtal_err *err);
int xtal_dataset_parse_chunk(xtal_dataset *ds, const xtal_csv_reader *r,
                             const xtal_csv_chunk *chunk, xtal_err *err);
/* Whole file in one call (limit < 0: all rows; else the first limit rows). */
int xtal_dataset_read_csv(const char *path, long limit, xtal_dataset *ds, xtal_err *err);

/* Compact HDF5 cache of a dataset (CSR layout: one row per crystal, one per atom) with the
 * source file's size and mtime, so a stale cache is rebuilt. */
int xtal_dataset_write_cache(const xtal_dataset *ds, const char *source_path,
                             const char *cache_path, xtal_err *err);
int xtal_dataset_read_cache(const char *cache_path, xtal_dataset *ds, xtal_err *err);
/* Loads a dataset through its cache: reads cache_path when it is fresh for csv_path, else
 * parses the CSV and (re)writes the cache. cache_path NULL: csv_path + ".h5" beside it, or
 * under $DRUSE_CACHE_DIR when the data directory is read-only. */
int xtal_dataset_load(const char *csv_path, const char *cache_path, xtal_dataset *ds,
                      xtal_err *err);

/* Added by the dataset helper: what xtal_dataset_load did with the cache, for commands that
 * report it and for tests of staleness. */
typedef struct {
    int from_cache;        /* 1: read from a fresh cache; 0: parsed the CSV */
    int cache_written;     /* 1: the cache was (re)written */
    char cache_path[4096]; /* the cache read or written; "" when none could be placed */
    char note[512];        /* why a cache was rebuilt or not written; "" otherwise */
} xtal_cache_info;
/* xtal_dataset_load that also fills info (may be NULL). With the default location (cache_path
 * NULL), a cache that cannot be written is not an error: the dataset is returned and info->note
 * says why; an explicit cache_path that cannot be written is an error. */
int xtal_dataset_load_ex(const char *csv_path, const char *cache_path, xtal_dataset *ds,
                         xtal_cache_info *info, xtal_err *err);
/* The default cache location of csv_path: csv_path + ".h5" when its folder is writable (and has
 * a write permission bit: root may write anywhere, but not into folders marked read-only), else
 * <dir>/<basename>.<hash of the absolute path>.h5 with <dir> = $DRUSE_CACHE_DIR, else
 * $XDG_CACHE_HOME/druse, else ~/.cache/druse (created when missing). */
int xtal_dataset_cache_path(const char *csv_path, char *buf, size_t bufsize, xtal_err *err);

#ifdef __cplusplus
}
#endif
#endif

/* ------------------------------------------------------------ HDF5 helpers */

/* Shared by druse's HDF5 files (dataset cache, novelty index, model files, checkpoints).
 * Declared only where <hdf5.h> is included before this header (this section has its own
 * guard, so including crystal.h again after <hdf5.h> adds it). All return 0 or -1. */
#if defined(H5_VERS_MAJOR) && !defined(DRUSE_CRYSTAL_H5)
#define DRUSE_CRYSTAL_H5
#ifdef __cplusplus
extern "C" {
#endif
/* HDF5 prints its error stack by default; nothing below pipeline/ prints, so callers switch
 * it off around each public call. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} xtal_h5_quiet;
xtal_h5_quiet xtal_h5_quiet_begin(void);
void xtal_h5_quiet_end(xtal_h5_quiet q);
/* Closes an id of any kind (file, group, dataset, space, type, attribute, property list);
 * ignores invalid ids. */
void xtal_h5_close(hid_t id);
/* Scalar attributes. get: -1 when absent. Strings are fixed-length, NUL-terminated. */
int xtal_h5_attr_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                     const void *value);
int xtal_h5_attr_put_string(hid_t loc, const char *name, const char *value);
int xtal_h5_attr_get(hid_t loc, const char *name, hid_t mem_type, void *value);
int xtal_h5_attr_get_string(hid_t loc, const char *name, char *buf, size_t size);
/* Writes a contiguous dataset of rank 1..3 from data (mem_type), stored as file_type, with one
 * string attribute attr = value (attr NULL: none). A dataset with no elements is created empty
 * (data may then be NULL). */
int xtal_h5_dataset_put(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                        const hsize_t *dims, const void *data, const char *attr,
                        const char *value);
#ifdef __cplusplus
}
#endif
#endif
