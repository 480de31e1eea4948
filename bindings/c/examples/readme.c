/* The C examples of the top-level README, as a complete program (the README
 * blocks are the regions between the readme markers; ci/readme_snippets.py
 * keeps them equal, ci/c.sh builds and runs this under ASan and UBSan).
 *
 * The partner fails three times, which opens the breaker: the fourth
 * request is answered from the fallback without calling the partner. Then
 * an operator resets the breaker and three requests go through the inline
 * fast path (circuit_fast_*), each recorded as a success. */
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

/* readme:begin fast */
static circuit_fast_breaker partner_fast; /* circuit_fast_init(&partner_fast, partner) */

static void offer_fast(void) {
  circuit_permit p;
  if (circuit_fast_acquire(&partner_fast, &p, NULL) != CIRCUIT_RESULT_OK) {
    serve_cold_offer();
    return;
  }
  uint64_t start = now_ns();
  if (call_partner()) {
    circuit_fast_record_success(&partner_fast, p); /* untimed: no clock read */
  } else {
    circuit_breaker_record(partner, p, CIRCUIT_OUTCOME_FAILURE, now_ns() - start);
  }
}
/* readme:end fast */

int main(void) {
  circuit_metrics m;
  int i;
  if (setup() != 0) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  for (i = 0; i < 4; i++) offer();
  if (circuit_fast_init(&partner_fast, partner) != CIRCUIT_RESULT_OK ||
      circuit_breaker_reset(partner) != CIRCUIT_RESULT_OK) {
    fprintf(stderr, "fast path setup failed\n");
    return 1;
  }
  for (i = 0; i < 3; i++) offer_fast();
  m.struct_size = (uint32_t)sizeof m;
  if (circuit_breaker_metrics(partner, &m) != CIRCUIT_RESULT_OK) return 1;
  circuit_breaker_free(partner);
  printf("partner called %d times, %d cold offer(s), %llu successes through the fast path\n",
         partner_calls, cold_offers, (unsigned long long)m.successes);
  return partner_calls == 6 && cold_offers == 1 && m.successes == 3 ? 0 : 1;
}
