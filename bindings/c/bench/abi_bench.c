/* The C side of the ABI overhead benchmark (ci/bench-c.sh): one protected
 * call (acquire + record SUCCESS on a CLOSED breaker, default consecutive
 * policy) in a loop timed with clock_gettime(CLOCK_MONOTONIC); prints the
 * median of several timed loops (robust on a shared, busy machine). Prints
 * "<label> <ns per call>"; link it against libcircuit.so (labels c_shared,
 * c_fast) or libcircuit.a (label c_static). A label ending in "_fast" makes
 * the call with the header's inline helpers (circuit_fast_acquire +
 * circuit_fast_record_success: the closed check inline, one library call);
 * any other label with circuit_breaker_acquire + circuit_breaker_record. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "circuit.h"

#define RUNS 7

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t loop(const circuit_breaker *b, uint64_t n) {
  uint64_t i, admitted = 0;
  circuit_permit p;
  for (i = 0; i < n; i++) {
    if (circuit_breaker_acquire(b, &p, NULL) == CIRCUIT_RESULT_OK) {
      circuit_breaker_record(b, p, CIRCUIT_OUTCOME_SUCCESS, 0);
      admitted++;
    }
  }
  return admitted;
}

static uint64_t loop_fast(const circuit_fast_breaker *fb, uint64_t n) {
  uint64_t i, admitted = 0;
  circuit_permit p;
  for (i = 0; i < n; i++) {
    if (circuit_fast_acquire(fb, &p, NULL) == CIRCUIT_RESULT_OK) {
      circuit_fast_record_success(fb, p);
      admitted++;
    }
  }
  return admitted;
}

static uint64_t run(const circuit_breaker *b, const circuit_fast_breaker *fb, int fast,
                    uint64_t n) {
  return fast ? loop_fast(fb, n) : loop(b, n);
}

int main(int argc, char **argv) {
  const char *label = argc > 1 ? argv[1] : "c";
  uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000ull;
  circuit_config_builder *cb = circuit_config_builder_new();
  circuit_config *cfg = NULL;
  const circuit_breaker *b = NULL;
  circuit_fast_breaker fb;
  size_t len = strlen(label);
  int fast = len >= 5 && strcmp(label + len - 5, "_fast") == 0;
  double runs[RUNS], tmp;
  int r, i, j;

  if (circuit_config_builder_build(cb, &cfg) != CIRCUIT_RESULT_OK ||
      circuit_breaker_new(cfg, NULL, &b) != CIRCUIT_RESULT_OK) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  circuit_config_free(cfg);
  circuit_config_builder_free(cb);
  if (circuit_fast_init(&fb, b) != CIRCUIT_RESULT_OK) {
    fprintf(stderr, "circuit_fast_init failed\n");
    return 1;
  }

  run(b, &fb, fast, n / 10); /* warm up */
  for (r = 0; r < RUNS; r++) {
    uint64_t start = now_ns();
    uint64_t admitted = run(b, &fb, fast, n);
    double ns = (double)(now_ns() - start) / (double)n;
    if (admitted != n) {
      fprintf(stderr, "only %llu of %llu admitted\n", (unsigned long long)admitted,
              (unsigned long long)n);
      return 1;
    }
    runs[r] = ns;
  }
  for (i = 1; i < RUNS; i++) {
    for (j = i; j > 0 && runs[j - 1] > runs[j]; j--) {
      tmp = runs[j];
      runs[j] = runs[j - 1];
      runs[j - 1] = tmp;
    }
  }
  printf("%s %.2f\n", label, runs[RUNS / 2]);
  circuit_breaker_free(b);
  return 0;
}
