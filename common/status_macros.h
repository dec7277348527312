// File: common/status_macros.h
//
// Propagation macros for absl::Status / absl::StatusOr. Abseil 20220623 has no
// status_macros.h, so m3serve defines these two once, here.
#ifndef M3SERVE_COMMON_STATUS_MACROS_H_
#define M3SERVE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// M3SERVE_RETURN_IF_ERROR(expr): evaluate `expr` (an absl::Status) and return
// it from the enclosing function when it is not OK.
#define M3SERVE_RETURN_IF_ERROR(expr)              \
  do {                                             \
    ::absl::Status m3serve_status_ = (expr);       \
    if (!m3serve_status_.ok()) return m3serve_status_; \
  } while (0)

#define M3SERVE_STATUS_CONCAT_INNER_(a, b) a##b
#define M3SERVE_STATUS_CONCAT_(a, b) M3SERVE_STATUS_CONCAT_INNER_(a, b)

// M3SERVE_ASSIGN_OR_RETURN(lhs, expr): evaluate `expr` (an absl::StatusOr<T>);
// on error return its status, otherwise move the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define M3SERVE_ASSIGN_OR_RETURN(lhs, expr) \
  M3SERVE_ASSIGN_OR_RETURN_IMPL_(M3SERVE_STATUS_CONCAT_(m3serve_statusor_, __LINE__), lhs, expr)

#define M3SERVE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = std::move(tmp).value()

#endif  // M3SERVE_COMMON_STATUS_MACROS_H_
