/* Built by ci/c.sh against an installed prefix with
 * `pkg-config --cflags --libs circuit` (and statically with --static):
 * the installed header, library and circuit.pc work together.
 *
 *   smoke full|slim
 *
 * CIRCUIT_PC_VERSION is `pkg-config --modversion circuit`: the library's
 * circuit_version() and the header's CIRCUIT_VERSION_* must equal it. The
 * argument says which library is installed: the full one has fleet sync,
 * the slim one (`make install SLIM=1`) answers CIRCUIT_RESULT_NOT_BUILT. */
#include <circuit.h>
#include <stdio.h>
#include <string.h>

#ifndef CIRCUIT_PC_VERSION
#error "build with -DCIRCUIT_PC_VERSION=\"$(pkg-config --modversion circuit)\""
#endif

static int check_sync(int slim) {
  const char *url = "redis://127.0.0.1:1";
  const circuit_registry *reg = NULL;
  circuit_sync *sync = NULL;
  char msg[512];
  size_t len = 0;
  uint32_t rc;
  int has_sync = (circuit_features() & CIRCUIT_FEATURE_SYNC) != 0;

  if (has_sync == slim) {
    fprintf(stderr, "circuit_features() = %#x for the %s library\n", circuit_features(),
            slim ? "slim" : "full");
    return 1;
  }
  if (circuit_registry_new(NULL, 0, 0, NULL, &reg) != CIRCUIT_RESULT_OK) {
    fprintf(stderr, "circuit_registry_new failed\n");
    return 1;
  }
  /* An unreachable Redis is not an error for the full library (the worker
   * is DEGRADED until it answers). */
  rc = circuit_sync_start(reg, url, strlen(url), "smoke", 5, &sync);
  if (slim) {
    if (rc != CIRCUIT_RESULT_NOT_BUILT || sync != NULL) {
      fprintf(stderr, "slim circuit_sync_start: %s\n", circuit_result_str(rc));
      return 1;
    }
    if (circuit_last_error(msg, sizeof msg, &len) != CIRCUIT_RESULT_OK ||
        strncmp(msg, "CIRCUIT_RESULT_NOT_BUILT", 24) != 0) {
      fprintf(stderr, "slim last error: %s\n", msg);
      return 1;
    }
    printf("slim: circuit_sync_start -> %s (%s)\n", circuit_result_str(rc), msg);
  } else {
    if (rc != CIRCUIT_RESULT_OK || sync == NULL) {
      fprintf(stderr, "full circuit_sync_start: %s\n", circuit_result_str(rc));
      return 1;
    }
    if (circuit_sync_stop(sync) != CIRCUIT_RESULT_OK) return 1;
    circuit_sync_free(sync);
    printf("full: circuit_sync_start -> %s\n", circuit_result_str(rc));
  }
  circuit_registry_free(reg);
  return 0;
}

int main(int argc, char **argv) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b = NULL;
  circuit_permit p;
  char header_version[64];

  if (argc != 2 || (strcmp(argv[1], "full") != 0 && strcmp(argv[1], "slim") != 0)) {
    fprintf(stderr, "usage: %s full|slim\n", argv[0]);
    return 2;
  }
  if (circuit_abi_version() != CIRCUIT_ABI_VERSION) {
    fprintf(stderr, "ABI %u, header %u\n", circuit_abi_version(), (unsigned)CIRCUIT_ABI_VERSION);
    return 1;
  }
  snprintf(header_version, sizeof header_version, "%u.%u.%u", (unsigned)CIRCUIT_VERSION_MAJOR,
           (unsigned)CIRCUIT_VERSION_MINOR, (unsigned)CIRCUIT_VERSION_PATCH);
  if (strcmp(circuit_version(), CIRCUIT_PC_VERSION) != 0 ||
      strcmp(header_version, CIRCUIT_PC_VERSION) != 0) {
    fprintf(stderr, "versions differ: circuit_version() %s, header %s, pkg-config %s\n",
            circuit_version(), header_version, CIRCUIT_PC_VERSION);
    return 1;
  }
  if (check_sync(strcmp(argv[1], "slim") == 0) != 0) return 1;
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
