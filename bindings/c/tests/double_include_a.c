/* The header included twice in one translation unit (include guard), and in
 * two translation units linked together (nothing defined in the header). */
#include "circuit.h"
#include "circuit.h"

uint32_t double_include_a(void);

uint32_t double_include_a(void) { return circuit_abi_version(); }
