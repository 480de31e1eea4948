/* The C example of the top-level README, as a complete program (the README
 * block is the region between the readme markers; ci/readme_snippets.py
 * keeps them equal, ci/c.sh builds and runs this under ASan and UBSan).
 *
 * The partner fails three times, which opens the breaker: the fourth
 * request is answered from the fallback without calling the partner. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int partner_calls, cold_offers;

static int call_partner(void) { return ++partner_calls > 3; /* 1 = ok */ }

static void serve_cold_offer(void) { cold_offers++; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* readme:begin protect */
#include <circuit.h>

static const circuit_breaker *partner;

static int setup(void) {
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  circuit_config_builder_set_consecutive_failures(cb, 3);
  circuit_result rc = circuit_config_builder_build(cb, &cfg);
  if (rc == CIRCUIT_RESULT_OK) rc = circuit_breaker_new(cfg, NULL, &partner);
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);
  return rc == CIRCUIT_RESULT_OK ? 0 : -1;
}

static void offer(void) {
  circuit_permit p;
  uint64_t retry_after_ns;
  if (circuit_breaker_acquire(partner, &p, &retry_after_ns) != CIRCUIT_RESULT_OK) {
    serve_cold_offer(); /* refused: the partner is not called */
    return;
  }
  uint64_t start = now_ns();
  int ok = call_partner(); /* measure it yourself */
  circuit_breaker_record(partner, p, ok ? CIRCUIT_OUTCOME_SUCCESS : CIRCUIT_OUTCOME_FAILURE,
                         now_ns() - start);
}
/* readme:end protect */

int main(void) {
  int i;
  if (setup() != 0) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  for (i = 0; i < 4; i++) offer();
  circuit_breaker_free(partner);
  printf("partner called %d times, %d cold offer(s)\n", partner_calls, cold_offers);
  return partner_calls == 3 && cold_offers == 1 ? 0 : 1;
}
