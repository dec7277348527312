// File: bench/bench_clock.h
//
// Wall and CPU time for the benchmark binaries.
#ifndef M3SERVE_BENCH_BENCH_CLOCK_H_
#define M3SERVE_BENCH_BENCH_CLOCK_H_

#include <sys/resource.h>

#include <chrono>

namespace m3serve::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds (user + system) of this process so far.
inline double CpuSeconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace m3serve::bench

#endif  // M3SERVE_BENCH_BENCH_CLOCK_H_
