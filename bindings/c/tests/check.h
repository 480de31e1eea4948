/* A tiny assertion helper for the C tests: every CHECK counts as passed or
 * failed, failures print where and why, and check_summary() prints the line
 * the CI harness reads: "N passed, M failed". Not thread-safe: call CHECK
 * from the main thread only (workers collect counts, main checks them). */
#ifndef CIRCUIT_TEST_CHECK_H
#define CIRCUIT_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "circuit.h"

static int check_passed;
static int check_failed;

static const char *check_last_error(void) {
  static char buf[1024];
  size_t len = 0;
  buf[0] = '\0';
  if (circuit_last_error(buf, sizeof buf, &len) != CIRCUIT_RESULT_OK) {
    return "(last error unavailable)";
  }
  return buf;
}

static void check_report(int ok, const char *what, const char *file, int line) {
  if (ok) {
    check_passed++;
  } else {
    check_failed++;
    fprintf(stderr, "FAILED %s:%d: %s\n", file, line, what);
  }
}

static void check_rc(uint32_t got, uint32_t want, const char *expr, const char *file,
                     int line) {
  if (got == want) {
    check_passed++;
  } else {
    check_failed++;
    fprintf(stderr, "FAILED %s:%d: %s\n  returned %s, expected %s\n  last error: %s\n",
            file, line, expr, circuit_result_str(got), circuit_result_str(want),
            check_last_error());
  }
}

static int check_summary(void) {
  printf("%d passed, %d failed\n", check_passed, check_failed);
  return check_failed == 0 ? 0 : 1;
}

#define CHECK(cond) check_report((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_RC(expr, want) check_rc((uint32_t)(expr), (uint32_t)(want), #expr, __FILE__, __LINE__)
/* The last error names the code and mentions `needle`. */
#define CHECK_ERR_MENTIONS(needle) \
  check_report(strstr(check_last_error(), (needle)) != NULL, "last error mentions " #needle, \
               __FILE__, __LINE__)

#endif /* CIRCUIT_TEST_CHECK_H */
