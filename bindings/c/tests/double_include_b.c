/* Second translation unit including the header twice. */
#include "circuit.h"
#include "circuit.h"

uint32_t double_include_b(void);

uint32_t double_include_b(void) { return (uint32_t)CIRCUIT_ABI_VERSION; }
