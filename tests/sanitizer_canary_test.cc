// Built only with M3SERVE_SANITIZE=ON: proves that the sanitizer build
// catches what it is there to catch (heap overflow, use after free, leaks,
// signed overflow, a misaligned load) with the flags every target of the
// build gets, so a clean sanitizer run means something. Each bug runs in a
// gtest death-test child; the report must name it. Reports go to stderr here,
// where the death tests read them, even when the job sends every other
// process's reports to its log directory (ASAN_OPTIONS=log_path=...).
#include <sanitizer/common_interface_defs.h>
#include <sys/wait.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

namespace {

const bool kReportsToStderr = [] {
  __sanitizer_set_report_path("stderr");
  return true;
}();

// Opaque to the optimizer, so the bugs below are not folded away.
template <typename T>
T Launder(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

TEST(SanitizerCanaryDeathTest, HeapBufferOverflowIsReported) {
  EXPECT_DEATH(
      {
        char* p = Launder(new char[8]);
        p[Launder(8)] = 1;
        delete[] p;
      },
      "heap-buffer-overflow");
}

TEST(SanitizerCanaryDeathTest, UseAfterFreeIsReported) {
  EXPECT_DEATH(
      {
        int* p = Launder(new int(7));
        delete p;
        std::exit(*Launder(p));
      },
      "heap-use-after-free");
}

TEST(SanitizerCanaryDeathTest, LeakIsReportedAtExit) {
  EXPECT_EXIT(
      {
        void* volatile leak = std::malloc(4096);
        std::memset(leak, 1, 4096);
        leak = nullptr;
        std::exit(0);
      },
      [](int status) { return WIFEXITED(status) && WEXITSTATUS(status) != 0; },
      "detected memory leaks");
}

TEST(SanitizerCanaryDeathTest, SignedOverflowIsReported) {
  EXPECT_DEATH(
      {
        int x = Launder(INT_MAX);
        std::exit(x + Launder(1) > 0 ? 0 : 1);
      },
      "signed integer overflow");
}

TEST(SanitizerCanaryDeathTest, MisalignedLoadIsReported) {
  EXPECT_DEATH(
      {
        alignas(8) char buf[16] = {};
        const uint64_t* p = reinterpret_cast<const uint64_t*>(Launder(buf + 1));
        std::exit(static_cast<int>(*p));
      },
      "misaligned address");
}

}  // namespace
