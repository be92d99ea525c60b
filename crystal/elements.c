/* Element lookups over the generated table (crystal/elements_table.c). */
#include "crystal/crystal.h"

#include <ctype.h>
#include <string.h>

extern const xtal_element xtal_elements_table[XTAL_NUM_ELEMENTS];

const xtal_element *xtal_element_by_Z(int Z)
{
    if (Z < 1 || Z > XTAL_NUM_ELEMENTS) return NULL;
    return &xtal_elements_table[Z - 1];
}

int xtal_element_from_symbol(const char *symbol)
{
    if (!symbol) return 0;
    while (*symbol == ' ' || *symbol == '\t') symbol++;
    /* An element symbol is one capital letter and an optional lower-case one; anything after
     * (charges "2+", labels "1", "_a") is not part of it. Case-insensitive on input. No
     * guessing: "Ob" is unknown, not O, so a typo never becomes a silent wrong element. */
    if (!isalpha((unsigned char)symbol[0])) return 0;
    char sym[3] = {(char)toupper((unsigned char)symbol[0]), 0, 0};
    if (isalpha((unsigned char)symbol[1])) sym[1] = (char)tolower((unsigned char)symbol[1]);
    for (int z = 1; z <= XTAL_NUM_ELEMENTS; z++)
        if (strcmp(xtal_elements_table[z - 1].symbol, sym) == 0) return z;
    return 0;
}
