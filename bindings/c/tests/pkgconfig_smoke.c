/* Built by ci/c.sh against an installed prefix with
 * `pkg-config --cflags --libs circuit` (and statically with --static):
 * the installed header, library and circuit.pc work together. */
#include <circuit.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b = NULL;
  circuit_permit p;

  if (circuit_abi_version() != CIRCUIT_ABI_VERSION) {
    fprintf(stderr, "ABI %u, header %u\n", circuit_abi_version(), (unsigned)CIRCUIT_ABI_VERSION);
    return 1;
  }
  if (circuit_config_builder_build(cb, &cfg) != CIRCUIT_RESULT_OK ||
      circuit_breaker_new(cfg, NULL, &b) != CIRCUIT_RESULT_OK ||
      circuit_breaker_acquire(b, &p, NULL) != CIRCUIT_RESULT_OK ||
      circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 1000) != CIRCUIT_RESULT_OK) {
    fprintf(stderr, "protocol failed\n");
    return 1;
  }
  circuit_breaker_free(b);
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);
  printf("pkg-config smoke: libcircuit %s, ABI %u\n", circuit_version(), circuit_abi_version());
  return 0;
}
